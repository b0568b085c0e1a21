"""A legacy-style Flask app built by a factory, as teams have them: a field validator, ``clean()`` and a
signal receiver read the app's config, the app connects MongoEngine itself, and has its own hooks, routes
and error handlers. ``RESTENGINE_APP=tests.host_app:create_app('test')`` serves its Documents."""

from __future__ import annotations

import os
from typing import Any

import mongoengine
from flask import Flask, Response, current_app, g, jsonify
from mongoengine import Document, EmailField, StringField, ValidationError, signals


def _public_url(value: str) -> None:
    if not current_app.config["URLS_ALLOW_PRIVATE"] and value.startswith(("http://127.", "http://localhost")):
        raise ValidationError("private URLs are not allowed")


class Bookmark(Document):
    meta = {"collection": "bookmarks"}
    url = StringField(required=True, validation=_public_url)
    owner = EmailField(unique=True)
    title = StringField()

    def clean(self) -> None:
        if len(self.title or "") > current_app.config["TITLE_MAX"]:
            raise ValidationError("title too long", errors={"title": "too long"})


def _saved(sender: Any, document: Bookmark, **kwargs: Any) -> None:
    current_app.config["SAVED"].append(str(document.pk))


signals.post_save.connect(_saved, sender=Bookmark)


def create_app(environment: str = "production") -> Flask:
    app = Flask(__name__)
    app.config.update(URLS_ALLOW_PRIVATE=False, TITLE_MAX=40, SAVED=[], ENVIRONMENT=environment)
    mongoengine.connect(host=os.environ["LEGACY_MONGODB_URI"], uuidRepresentation="standard")

    @app.before_request
    def mark() -> None:
        g.marked = True

    @app.get("/hello")
    def hello() -> Response:
        return jsonify(marked=g.get("marked", False), environment=app.config["ENVIRONMENT"], saved=app.config["SAVED"])

    @app.errorhandler(404)
    def not_found(error: Exception) -> tuple[Response, int]:
        return jsonify(legacy="nothing here"), 404

    return app
