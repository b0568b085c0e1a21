"""Reading through HTTP: the resource index, representations, items, ``fields`` and ``expand``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from bson import ObjectId
from flask.testing import FlaskClient

from restengine.demo.bookstore import Author, Book
from tests.integration.api_helpers import (
    COMMANDS,
    UTC_2024,
    customer,
    database_name,
    ids,
    items,
    ok,
    order,
    parse_time,
    problem,
    product,
    reads,
    shop,
    strong_etag,
)
from tests.legacy_models import Circle, Comment, Square

RESOURCES = {"books", "author", "customers", "products", "orders", "shapes", "circle", "square", "comment"}


def test_index_lists_every_resource_with_absolute_urls(client: FlaskClient) -> None:
    body = ok(client.get("/api/"))
    assert {r["name"] for r in body["resources"]} == RESOURCES
    assert len(body["resources"]) == len(RESOURCES)
    for resource in body["resources"]:
        assert resource["url"] == f"http://localhost/api/{resource['name']}"


def test_customer_keyed_by_a_string_uses_attribute_names(client: FlaskClient) -> None:
    shop()
    body = ok(client.get("/api/customers/ABC123"))
    assert body["id"] == "ABC123"
    assert body["name"] == "Ada"
    assert body["email"] == "abc123@example.com"
    assert parse_time(body["joined"]) == UTC_2024
    assert body["tags"] == ["vip"]
    assert not {"_id", "mail", "j"} & set(body), "db_field names never show"


def test_product_keyed_by_a_uuid_with_decimal_and_bytes(client: FlaskClient) -> None:
    _, pen, _ = shop()
    body = ok(client.get(f"/api/products/{pen.sku}"))
    assert body["id"] == str(pen.sku)
    assert body["price"] == "12.50"
    assert body["blob"] == "+/+/", "standard base64 alphabet"


def test_order_shows_references_as_ids_and_embedded_documents_as_objects(client: FlaskClient) -> None:
    _, pen, placed = shop()
    body = ok(client.get(f"/api/orders/{placed.id}"))
    assert body["id"] == str(placed.id)
    assert body["customer"] == "ABC123"
    assert body["lines"] == [{"product": str(pen.sku), "quantity": 2, "unit_price": "12.50"}]
    assert body["shipping"] == {"street": "1 rue Neuve", "city": "Lyon", "country": "FR"}
    assert body["total"] == "25.00"
    assert body["status"] == "open"
    assert abs(parse_time(body["placed"]) - datetime.now(UTC)) < timedelta(minutes=5)
    assert "cust" not in body


def test_objectid_keys_and_references(client: FlaskClient) -> None:
    author = Author(name="Ann Author").save()
    book = Book(title="T", isbn="9780000000002", author=author, price=Decimal("9.90")).save()
    body = ok(client.get(f"/api/books/{book.id}"))
    assert body["id"] == str(book.id) and len(body["id"]) == 24
    assert body["author"] == str(author.id)
    assert body["price"] == "9.90"


def test_generic_reference_names_class_and_id(client: FlaskClient) -> None:
    ada, _, placed = shop()
    about_ada = Comment(subject=ada, body="Pays on time", created=datetime(2024, 1, 2, 3, 4, 5)).save()
    about_order = Comment(subject=placed, body="Shipped late").save()
    body = ok(client.get(f"/api/comment/{about_ada.id}"))
    assert body["subject"] == {"_cls": "Customer", "id": "ABC123"}
    assert parse_time(body["created"]) == UTC_2024
    assert ok(client.get(f"/api/comment/{about_order.id}"))["subject"] == {"_cls": "Order", "id": str(placed.id)}


def test_inheritance_collection_lists_every_subclass_with_cls(client: FlaskClient) -> None:
    circle = Circle(name="c", radius=1.5).save()
    square = Square(name="s", side=2.0).save()
    by_id = {item["id"]: item for item in items(client, "/api/shapes")}
    assert set(by_id) == {str(circle.id), str(square.id)}
    assert by_id[str(circle.id)]["_cls"] == "Shape.Circle" and by_id[str(circle.id)]["radius"] == 1.5
    assert by_id[str(square.id)]["_cls"] == "Shape.Square" and by_id[str(square.id)]["side"] == 2.0


def test_subclass_resource_serves_only_its_class(client: FlaskClient) -> None:
    circle = Circle(name="c", radius=1.5).save()
    square = Square(name="s", side=2.0).save()
    circles = items(client, "/api/circle")
    assert [c["id"] for c in circles] == [str(circle.id)]
    assert circles[0]["_cls"] == "Shape.Circle"
    assert ok(client.get(f"/api/square/{square.id}"))["side"] == 2.0
    problem(client.get(f"/api/circle/{square.id}"), 404)


def test_fields_selects_what_is_returned(client: FlaskClient) -> None:
    shop()
    product("Ink", "0.99")
    listed = items(client, "/api/products?fields=name,price")
    assert len(listed) == 2
    assert all(set(item) == {"id", "name", "price"} for item in listed)


def test_fields_naming_an_unknown_field_is_400(client: FlaskClient) -> None:
    problem(client.get("/api/products?fields=name,nope"), 400, "fields")


def test_item_has_a_strong_etag(client: FlaskClient) -> None:
    shop()
    response = client.get("/api/customers/ABC123")
    assert response.status_code == 200
    assert not strong_etag(response).startswith("W/")


@pytest.mark.parametrize(
    "path",
    [
        "/api/books/not-an-objectid",
        f"/api/books/{ObjectId()}",
        "/api/products/123",
        f"/api/products/{uuid.uuid4()}",
        "/api/customers/ZZZ999",
        "/api/customers/abc",
        "/api/no-such-resource",
    ],
)
def test_malformed_or_unknown_ids_are_404(client: FlaskClient, path: str) -> None:
    problem(client.get(path), 404)


def test_expand_customer_replaces_the_id_with_the_object(client: FlaskClient) -> None:
    _, _, placed = shop()
    (listed,) = items(client, "/api/orders?expand=customer")
    assert listed["customer"]["id"] == "ABC123"
    assert listed["customer"]["name"] == "Ada" and listed["customer"]["email"] == "abc123@example.com"
    item = ok(client.get(f"/api/orders/{placed.id}?expand=customer"))
    assert item["customer"]["id"] == "ABC123"


def test_expand_into_embedded_lines(client: FlaskClient) -> None:
    _, pen, _ = shop()
    (listed,) = items(client, "/api/orders?expand=lines.product")
    assert listed["customer"] == "ABC123", "only what is asked is expanded"
    (line,) = listed["lines"]
    assert line["product"]["id"] == str(pen.sku) and line["product"]["price"] == "12.50"
    assert line["quantity"] == 2


def test_expand_two_fields(client: FlaskClient) -> None:
    shop()
    (listed,) = items(client, "/api/orders?expand=customer,lines.product")
    assert listed["customer"]["name"] == "Ada"
    assert listed["lines"][0]["product"]["name"] == "Pen"


@pytest.mark.parametrize("expand", ["nope", "note", "lines.quantity"])
def test_expanding_what_is_not_a_reference_is_400(client: FlaskClient, expand: str) -> None:
    shop()
    problem(client.get(f"/api/orders?expand={expand}"), 400, "expand")


def _hundred_orders() -> None:
    products = [product(f"P{i}", f"{i}.25") for i in range(10)]
    buyers = [customer(f"CUS{i:03d}", f"Buyer {i}") for i in range(20)]
    for i in range(100):
        order(buyers[i % 20], (products[i % 10], 1), (products[(i + 3) % 10], 2))


@pytest.mark.parametrize(("expand", "budget"), [("customer", 3), ("customer,lines.product", 4)])
def test_expanding_a_page_costs_a_bounded_number_of_queries(client: FlaskClient, expand: str, budget: int) -> None:
    _hundred_orders()
    name = database_name()
    with COMMANDS.counting(name) as names:
        response = client.get(f"/api/orders?limit=100&expand={expand}")
    listed = ok(response)["items"]
    assert len(listed) == 100
    assert all(isinstance(item["customer"], dict) and item["customer"]["name"] for item in listed)
    if "lines.product" in expand:
        assert all(isinstance(line["product"], dict) for item in listed for line in item["lines"])
    assert 1 <= len(reads(names)) <= budget, names


def test_listing_without_expand_keeps_ids(client: FlaskClient) -> None:
    shop()
    assert ids(client, "/api/customers") == ["ABC123"]
    (listed,) = items(client, "/api/orders")
    assert listed["customer"] == "ABC123"
