"""The legacy models behave as plain MongoEngine says, on the real server (no API involved)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal

import pytest
from mongoengine import NotUniqueError, OperationError, ValidationError

import restengine.db
from restengine.config import load_settings
from restengine.documents import load_documents
from restengine.ops.indexes import create_indexes
from tests.integration.api_helpers import customer, legacy_registry, order, product, raw, stored_keys
from tests.legacy_models import Address, Circle, Comment, Customer, Order, OrderLine, Product, Shape, Square


@pytest.fixture(autouse=True)
def connection(mongodb_uri: str) -> Iterator[None]:
    with legacy_registry():  # disconnecting resets the cached collections of registered classes only
        restengine.db.register(load_settings({"MONGODB_URI": mongodb_uri}), timeout_ms=60_000)
        create_indexes(load_documents(["tests.legacy_models"]))
        yield
        restengine.db.close_all()


def test_discovery_finds_every_document() -> None:
    found = load_documents(["tests.legacy_models"])
    assert [cls.__name__ for cls in found] == ["Customer", "Product", "Order", "Shape", "Circle", "Square", "Comment"]


def test_declared_indexes_exist() -> None:
    db = restengine.db.get_database()
    assert db["customers"].index_information()["mail_1"]["unique"] is True
    assert db["products"].index_information()["name_1"]["unique"] is True
    assert {"status_1", "placed_-1"} <= set(db["orders"].index_information())
    assert set(db["comment"].index_information()) <= {"_id_"}


def test_clean_computes_the_total() -> None:
    ada, pen, ink = customer("ABC123", "Ada"), product("Pen", "12.50"), product("Ink", "0.99")
    saved = order(ada, (pen, 2), (ink, 1))
    assert saved.total == Decimal("25.99")
    reloaded = Order.objects.get(id=saved.id)
    assert reloaded.total == Decimal("25.99")
    assert reloaded.status == "open" and isinstance(reloaded.placed, datetime)


def test_clean_refuses_an_order_without_lines() -> None:
    ada = customer("ABC123", "Ada")
    with pytest.raises(ValidationError, match="an order needs at least one line"):
        Order(customer=ada, lines=[]).save()
    assert Order.objects.count() == 0


def test_deny_rule_refuses_deleting_a_customer_with_orders() -> None:
    ada = customer("ABC123", "Ada")
    order(ada, (product("Pen", "1.00"), 1))
    with pytest.raises(OperationError):
        ada.delete()
    assert Customer.objects(code="ABC123").count() == 1


def test_unique_email_is_enforced() -> None:
    customer("ABC123", "Ada", email="same@example.com")
    with pytest.raises(NotUniqueError):
        customer("DEF456", "Bob", email="same@example.com")
    assert Customer.objects.count() == 1


@pytest.mark.parametrize("code", ["abc123", "AB1234", "ABCDEF"])
def test_customer_code_follows_its_pattern(code: str) -> None:
    with pytest.raises(ValidationError):
        Customer(code=code, name="Ada").validate()


def test_stored_under_db_field_names() -> None:
    ada = customer("ABC123", "Ada", joined=datetime(2024, 1, 2), tags=["vip"])
    pen = product("Pen", "12.50", blob=b"\x00\xff")
    placed = order(ada, (pen, 2), shipping=Address(street="1 rue Neuve", city="Lyon", country="FR"))

    stored = raw("customers", "ABC123")
    assert stored["mail"] == "abc123@example.com" and stored["j"] == datetime(2024, 1, 2)
    assert set(stored) <= stored_keys(Customer)
    stored_order = raw("orders", placed.id)
    assert stored_order["cust"] == "ABC123"
    assert stored_order["shipping"] == {"street": "1 rue Neuve", "c": "Lyon", "country": "FR"}
    assert stored_order["lines"][0]["product"] == pen.sku
    assert set(stored_order) <= stored_keys(Order)


def test_product_is_keyed_by_a_uuid() -> None:
    pen = product("Pen", "12.50", blob=b"\x00\xff")
    assert isinstance(pen.sku, uuid.UUID)
    assert raw("products", pen.sku)["name"] == "Pen"
    reloaded = Product.objects.get(sku=pen.sku)
    assert reloaded.price == Decimal("12.50") and reloaded.blob == b"\x00\xff"


def test_custom_queryset() -> None:
    ada, pen = customer("ABC123", "Ada"), product("Pen", "1.00")
    first = order(ada, (pen, 1))
    order(ada, (pen, 1), status="paid")
    assert [o.id for o in Order.objects.open()] == [first.id]


def test_lines_are_validated() -> None:
    ada, pen = customer("ABC123", "Ada"), product("Pen", "1.00")
    with pytest.raises(ValidationError):
        Order(customer=ada, lines=[OrderLine(product=pen, quantity=0)]).save()
    with pytest.raises(ValidationError):
        Order(customer=ada, lines=[OrderLine(quantity=1)]).save()


def test_inheritance_shares_one_collection() -> None:
    circle = Circle(name="c", radius=1.5).save()
    square = Square(name="s", side=2.0).save()
    assert raw("shapes", circle.id)["_cls"] == "Shape.Circle"
    assert {type(s) for s in Shape.objects} == {Circle, Square}
    assert [s.id for s in Circle.objects] == [circle.id]
    assert Square.objects.get(id=square.id).side == 2.0
    with pytest.raises(ValidationError):
        Circle(name="bad", radius=-1).save()


def test_generic_reference_round_trip() -> None:
    ada = customer("ABC123", "Ada")
    note = Comment(subject=ada, body="Pays on time").save()
    reloaded = Comment.objects.get(id=note.id)
    assert isinstance(reloaded.subject, Customer) and reloaded.subject.code == "ABC123"
    assert raw("comment", note.id)["subject"]["_cls"] == "Customer"
