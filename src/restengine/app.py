"""The application factory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Flask, Response, url_for
from werkzeug.middleware.proxy_fix import ProxyFix

from restengine import cache, db, errors, health, redisconn, requestid
from restengine.api import Api
from restengine.config import load_settings, require_secret
from restengine.fastpath import CachedReads
from restengine.jsonresp import json_response

SETTINGS = "restengine.settings"

index_bp = Blueprint("index", __name__)


@index_bp.get("/")
def index() -> Response:
    """What this service is, with absolute links (they honour X-Forwarded-* through ProxyFix)."""
    return json_response(
        {
            "name": "restengine",
            "links": {
                "health": url_for("health.healthz", _external=True),
                "ready": url_for("health.readyz", _external=True),
                "api": url_for("restengine_api_index", _external=True),
            },
        }
    )


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the RestEngine WSGI app.

    Settings come from the defaults, then the environment, then ``config``
    (same keys as the environment; flask-mongoengine's ``MONGODB_SETTINGS``
    and ``MONGODB_HOST``-style keys are accepted too). Raises
    :class:`restengine.config.ConfigError` on an invalid setting, a missing
    ``RESTENGINE_SECRET_KEY``, or a ``RESTENGINE_DOCUMENTS`` module that
    cannot be imported. Does no
    database or Redis I/O: connections open on first use, after any fork.
    """
    settings = load_settings(config)
    require_secret(settings)
    app = Flask("restengine")
    app.config.from_mapping(config or {})
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions[SETTINGS] = settings

    errors.init_app(app)
    requestid.init_app(app)
    db.init_app(app, settings)
    api = Api(app, deadline=False)  # the _Deadline middleware already bounds every request
    for module in settings.documents:
        api.register_module(module)
    app.wsgi_app = CachedReads(app.wsgi_app, app, api)  # type: ignore[method-assign]
    redisconn.init_app(app, settings)
    cache.init_app(app, settings)
    app.register_blueprint(index_bp)
    app.register_blueprint(health.bp)

    if settings.proxy_count:
        n = settings.proxy_count
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n)  # type: ignore[method-assign]
    return app
