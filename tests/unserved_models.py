"""An app's classes where a served class refers to one the API does not serve (issue 11).

Never registered as a module: the tests register ``Article`` and ``Editor`` only.
``Account`` stays unserved, and nothing of it (its fields, its documents' existence)
may reach a client through ``expand``, a write or the OpenAPI document.
"""

from __future__ import annotations

from typing import Any

from mongoengine import Document, GenericReferenceField, IntField, ListField, ReferenceField, StringField


class Account(Document):
    """Never served."""

    email = StringField(required=True)
    password_hash = StringField()

    meta: dict[str, Any] = {"collection": "accounts"}


class Editor(Document):
    """Someone who edits articles."""

    name = StringField()
    salary = IntField()

    meta: dict[str, Any] = {"collection": "editors"}


class Article(Document):
    """A piece of writing."""

    title = StringField()
    author = ReferenceField(Account)
    readers = ListField(ReferenceField(Account))
    editor = ReferenceField(Editor)
    reviewer = ReferenceField(Editor)
    about = GenericReferenceField()
    topic = GenericReferenceField(choices=[Account, Editor])

    meta: dict[str, Any] = {"collection": "articles"}
