"""A collection every filter and sort of which has its index (``restengine doctor`` finds nothing)."""

from __future__ import annotations

from typing import Any

from mongoengine import Document, StringField


class Label(Document):
    meta: dict[str, Any] = {"collection": "doctor_labels", "indexes": [("name", "id"), ("-name", "id")]}

    name = StringField(required=True)
