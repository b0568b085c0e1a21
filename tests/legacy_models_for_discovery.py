"""Legacy-style models that document discovery must sort through (used by unit tests)."""

from __future__ import annotations

from typing import Any

from mongoengine import Document, EmbeddedDocument, EmbeddedDocumentField, IntField, StringField

from restengine.demo.bookstore import Author  # noqa: F401  (imported: must not be discovered here)


class Stamped(Document):
    """Abstract: never served."""

    label = StringField()

    meta: dict[str, Any] = {"abstract": True}


class Size(EmbeddedDocument):
    width = IntField()
    height = IntField()


class Shape(Stamped):
    name = StringField(required=True)
    size = EmbeddedDocumentField(Size)

    meta: dict[str, Any] = {"allow_inheritance": True, "collection": "shapes", "indexes": ["name"]}


class Circle(Shape):
    radius = IntField()

    meta: dict[str, Any] = {"indexes": ["radius"]}


Round = Circle  # a second name for the same class: listed once
