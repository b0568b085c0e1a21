"""A legacy-style collection for ``restengine doctor`` (tests/integration/test_doctor.py): its tests seed it
through PyMongo with known problems."""

from __future__ import annotations

from typing import Any

from mongoengine import DictField, Document, EmbeddedDocument, EmbeddedDocumentField, IntField, StringField


class Byline(EmbeddedDocument):
    name = StringField(required=True)


class Article(Document):
    meta: dict[str, Any] = {
        "collection": "doctor_articles",
        "indexes": [
            {"fields": ["slug"], "unique": True},
            {"fields": ["code"], "unique": True},
            ("title", "id"),
            ("-title", "id"),
        ],
    }

    slug = StringField()
    code = StringField()
    title = StringField(required=True)
    views = IntField()
    byline = EmbeddedDocumentField(Byline)
    extra = DictField()
