"""A class written for data an Eve service stored: its meta dates are fields stored as ``_created``/``_updated``."""

from __future__ import annotations

from typing import Any

from mongoengine import DateTimeField, Document, StringField


class Note(Document):
    text = StringField(required=True)
    created = DateTimeField(db_field="_created")
    updated = DateTimeField(db_field="_updated")

    meta: dict[str, Any] = {"collection": "notes"}
