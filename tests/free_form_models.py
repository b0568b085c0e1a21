"""Documents with free-form values: lists, dicts and dynamic fields of no declared element type (issue 12)."""

from __future__ import annotations

from mongoengine import DictField, Document, DynamicField, IntField, ListField, MapField, StringField


class FreeProfile(Document):
    meta = {"collection": "profiles"}

    name = StringField()
    anything = ListField()
    settings = DictField()
    extra = DynamicField()
    counts = MapField(IntField())


class FreeCounter(Document):
    """An integer primary key: a body may give it as a JSON integer or its text."""

    meta = {"collection": "counters"}

    number = IntField(primary_key=True)
    label = StringField()


class FreeTag(Document):
    """A string primary key with no rules of its own: a body's ``id`` must be a JSON string."""

    meta = {"collection": "tags"}

    name = StringField(primary_key=True)
    label = StringField()
