"""Documents whose stored data may not match them (issue 12): legacy values, polymorphic embedded documents,
subclasses served on their own, and a GridFS file."""

from __future__ import annotations

from typing import Any

from mongoengine import (
    BooleanField,
    DateTimeField,
    DecimalField,
    DictField,
    Document,
    EmbeddedDocument,
    EmbeddedDocumentField,
    FileField,
    FloatField,
    IntField,
    ListField,
    MapField,
    ReferenceField,
    StringField,
    UUIDField,
)


class Target(Document):
    meta: dict[str, Any] = {"collection": "targets"}

    label = StringField()


class Part(EmbeddedDocument):
    meta: dict[str, Any] = {"allow_inheritance": True}

    name = StringField()
    size = IntField()


class Gear(Part):
    teeth = IntField(min_value=1)


class Spring(Part):
    stiffness = FloatField()


class Legacy(Document):
    """Every kind of field a legacy collection may hold anything in."""

    meta: dict[str, Any] = {"collection": "legacy"}

    title = StringField(required=True)
    count = IntField()
    ratio = FloatField()
    amount = DecimalField(precision=2)
    flag = BooleanField()
    when = DateTimeField()
    uid = UUIDField()
    target = ReferenceField(Target)
    anything = ListField()
    settings = DictField()
    counts = MapField(IntField())
    tags = ListField(StringField())
    part = EmbeddedDocumentField(Part)
    parts = ListField(EmbeddedDocumentField(Part))


class Vehicle(Document):
    """A parent served with its subclasses; ``Truck`` is also served on its own, with stricter options."""

    meta: dict[str, Any] = {"collection": "vehicles", "allow_inheritance": True}

    name = StringField()


class Car(Vehicle):
    seats = IntField()


class Truck(Vehicle):
    load = IntField()
    approved = BooleanField(default=False)  # read-only in the truck resource
    secret = StringField()  # hidden in the truck resource


class Scan(Document):
    """A document holding a GridFS file."""

    meta: dict[str, Any] = {"collection": "scans"}

    name = StringField()
    image = FileField()
