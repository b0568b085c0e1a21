"""A shop, written the way a legacy MongoEngine codebase writes its models.

Plain MongoEngine, nothing from RestEngine: the API must serve these classes
unchanged. They exercise what such codebases lean on: primary keys that are
not ObjectIds (a string code, a binary UUID), ``db_field`` renames, embedded
documents, references with a DENY rule, a ``clean()`` that computes a field,
a custom QuerySet, inheritance in one collection and a generic reference.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from mongoengine import (
    DENY,
    BinaryField,
    DateTimeField,
    DecimalField,
    Document,
    EmailField,
    EmbeddedDocument,
    EmbeddedDocumentField,
    FloatField,
    GenericReferenceField,
    IntField,
    ListField,
    QuerySet,
    ReferenceField,
    StringField,
    UUIDField,
    ValidationError,
)

CENT = Decimal("0.01")


def utcnow() -> datetime:
    """Now in UTC, naive, as MongoEngine stores datetimes."""
    return datetime.now(UTC).replace(tzinfo=None)


class Customer(Document):
    """A customer, keyed by a short code such as ``ABC123``."""

    code = StringField(primary_key=True, regex=r"^[A-Z]{3}\d{3}$")
    name = StringField(required=True)
    email = EmailField(unique=True, db_field="mail")
    joined = DateTimeField(db_field="j")
    tags = ListField(StringField())

    meta: dict[str, Any] = {"collection": "customers"}


class Address(EmbeddedDocument):
    street = StringField()
    city = StringField(db_field="c")
    country = StringField()


class Product(Document):
    """Something for sale, keyed by a UUID stored as BSON binary."""

    sku = UUIDField(primary_key=True, binary=True, default=uuid.uuid4)
    name = StringField(unique=True)
    price = DecimalField(precision=2, min_value=0, required=True)
    blob = BinaryField()

    meta: dict[str, Any] = {"collection": "products"}


class OrderLine(EmbeddedDocument):
    product = ReferenceField(Product, required=True)
    quantity = IntField(min_value=1, required=True)
    unit_price = DecimalField(precision=2)


class OrderQuerySet(QuerySet):
    def open(self) -> OrderQuerySet:
        """Orders not paid yet."""
        return self.filter(status="open")


class Order(Document):
    """An order; a customer with orders cannot be deleted."""

    customer = ReferenceField(Customer, reverse_delete_rule=DENY, db_field="cust")
    lines = ListField(EmbeddedDocumentField(OrderLine))
    shipping = EmbeddedDocumentField(Address)
    status = StringField(choices=("open", "paid", "shipped"), default="open")
    placed = DateTimeField(default=utcnow)
    total = DecimalField(precision=2)
    note = StringField(max_length=200)

    meta: dict[str, Any] = {
        "collection": "orders",
        "queryset_class": OrderQuerySet,
        "indexes": ["status", "-placed"],
    }

    def clean(self) -> None:
        """Refuse an order without lines; set ``total`` to the sum of quantity × unit price.

        A line without a unit price counts as free. Lines whose values are not
        numbers leave ``total`` alone: field validation reports them.
        """
        if not self.lines:
            raise ValidationError("an order needs at least one line")
        total = Decimal(0)
        for line in self.lines:
            if not isinstance(line, OrderLine) or isinstance(line.quantity, bool):
                return
            try:
                total += Decimal(str(line.quantity)) * Decimal(str(line.unit_price or 0))
            except (InvalidOperation, ValueError):
                return
        self.total = total.quantize(CENT)


class Shape(Document):
    name = StringField()

    meta: dict[str, Any] = {"allow_inheritance": True, "collection": "shapes"}


class Circle(Shape):
    radius = FloatField(min_value=0)


class Square(Shape):
    side = FloatField()


class Comment(Document):
    """A remark about any document (no index on ``subject``: it holds DBRefs)."""

    subject = GenericReferenceField()
    body = StringField(required=True)
    created = DateTimeField()
