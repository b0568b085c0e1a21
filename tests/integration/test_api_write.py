"""Writing through HTTP: POST, PUT, PATCH and DELETE, validated by the legacy Documents themselves."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from bson import ObjectId
from flask import Flask
from flask.testing import FlaskClient

import restengine.db
from tests.integration.api_helpers import (
    COMMANDS,
    UTC_2024,
    api_app,
    customer,
    database_name,
    ids,
    ok,
    parse_time,
    problem,
    raw,
    shop,
    stored_keys,
    strong_etag,
)
from tests.legacy_models import Comment, Customer, Order, Product

MERGE_PATCH = "application/merge-patch+json"


@pytest.fixture
def app(mongodb_uri: str) -> Iterator[Flask]:
    with api_app(mongodb_uri) as app:
        yield app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def patch(client: FlaskClient, path: str, body: Any, content_type: str = MERGE_PATCH, **kwargs: Any) -> Any:
    return client.patch(path, data=json.dumps(body), content_type=content_type, **kwargs)


def new_customer(**fields: Any) -> dict[str, Any]:
    return {"code": "NEW001", "name": "Nia", "email": "nia@example.com", **fields}


# POST


def test_post_creates_a_customer(client: FlaskClient) -> None:
    response = client.post("/api/customers", json=new_customer(joined="2024-01-02T03:04:05Z", tags=["a"]))
    body = ok(response, 201)
    assert response.headers["Location"] == "http://localhost/api/customers/NEW001"
    assert body["id"] == "NEW001" and body["name"] == "Nia" and body["email"] == "nia@example.com"
    assert parse_time(body["joined"]) == UTC_2024
    fetched = client.get("/api/customers/NEW001")
    assert ok(fetched) == body
    assert strong_etag(response) == strong_etag(fetched)
    stored = raw("customers", "NEW001")
    assert stored["mail"] == "nia@example.com" and stored["j"] == datetime(2024, 1, 2, 3, 4, 5)
    assert set(stored) <= stored_keys(Customer), "no field MongoEngine would not write"


def test_post_creates_a_product_keyed_by_uuid(client: FlaskClient) -> None:
    response = client.post("/api/products", json={"name": "Pen", "price": "1.50", "blob": "+/+/"})
    body = ok(response, 201)
    sku = uuid.UUID(body["id"])
    assert response.headers["Location"] == f"http://localhost/api/products/{sku}"
    assert body["price"] == "1.50"
    stored = Product.objects.get(sku=sku)
    assert stored.price == Decimal("1.50") and stored.blob == b"\xfb\xff\xbf"
    assert set(raw("products", sku)) <= stored_keys(Product)


def test_post_creates_an_order_running_clean(client: FlaskClient) -> None:
    _, pen, _ = shop()
    body = ok(
        client.post(
            "/api/orders",
            json={
                "customer": "ABC123",
                "lines": [{"product": str(pen.sku), "quantity": 3, "unit_price": "12.50"}],
                "shipping": {"street": "2 quai", "city": "Lyon", "country": "FR"},
            },
        ),
        201,
    )
    assert body["total"] == "37.50", "computed by Order.clean()"
    assert body["status"] == "open" and parse_time(body["placed"])
    assert body["customer"] == "ABC123"
    stored = raw("orders", ObjectId(body["id"]))
    assert stored["cust"] == "ABC123" and stored["shipping"]["c"] == "Lyon"
    assert set(stored) <= stored_keys(Order)
    assert Order.objects.get(id=body["id"]).lines[0].product.sku == pen.sku


def test_post_to_a_subclass_stores_its_cls(client: FlaskClient) -> None:
    body = ok(client.post("/api/circle", json={"name": "c", "radius": 2}), 201)
    assert body["_cls"] == "Shape.Circle"
    assert raw("shapes", ObjectId(body["id"]))["_cls"] == "Shape.Circle"
    assert ids(client, "/api/shapes") == [body["id"]]


def test_post_a_generic_reference(client: FlaskClient) -> None:
    shop()
    body = ok(client.post("/api/comment", json={"subject": {"_cls": "Customer", "id": "ABC123"}, "body": "Hi"}), 201)
    assert body["subject"] == {"_cls": "Customer", "id": "ABC123"}
    assert Comment.objects.get(id=body["id"]).subject.code == "ABC123"


def test_post_an_array_inserts_all_at_once(client: FlaskClient) -> None:
    batch = [new_customer(), new_customer(code="NEW002", email="two@example.com", name="Two")]
    with COMMANDS.counting(database_name()) as names:
        response = client.post("/api/customers", json=batch)
    body = ok(response, 201)
    assert [item["id"] for item in body["items"]] == ["NEW001", "NEW002"]
    assert names.count("insert") == 1, names
    assert Customer.objects.count() == 2


def test_post_an_array_with_one_invalid_item_inserts_nothing(client: FlaskClient) -> None:
    batch = [new_customer(), new_customer(code="NEW002", email="not-an-email"), new_customer(code="NEW003")]
    body = problem(client.post("/api/customers", json=batch), 422)
    assert "1" in body["errors"] and "0" not in body["errors"]
    assert Customer.objects.count() == 0


def _order(sku: str, **fields: Any) -> dict[str, Any]:
    return {"customer": "ABC123", "lines": [{"product": sku, "quantity": 1, "unit_price": "1.00"}], **fields}


INVALID: list[tuple[str, str, Any, str]] = [
    ("missing name", "/api/customers", {"code": "NEW001"}, "name"),
    ("email", "/api/customers", new_customer(email="not-an-email"), "email"),
    ("db_field name", "/api/customers", new_customer(mail="x@example.com"), "mail"),
    ("unknown field", "/api/customers", new_customer(nope=1), "nope"),
    ("tags not a list", "/api/customers", new_customer(tags="vip"), "tags"),
    ("bad datetime", "/api/customers", new_customer(joined="yesterday"), "joined"),
    ("negative price", "/api/products", {"name": "P", "price": "-1"}, "price"),
    ("missing price", "/api/products", {"name": "P"}, "price"),
    ("price not a number", "/api/products", {"name": "P", "price": "cheap"}, "price"),
    ("blob not base64", "/api/products", {"name": "P", "price": "1", "blob": "not base64!"}, "blob"),
    ("choices", "/api/orders", _order("{sku}", status="lost"), "status"),
    ("max_length", "/api/orders", _order("{sku}", note="x" * 201), "note"),
    ("quantity below min", "/api/orders", _order("{sku}") | {"lines": [{"product": "{sku}", "quantity": 0}]}, "lines"),
    ("quantity not int", "/api/orders", _order("{sku}") | {"lines": [{"product": "{sku}", "quantity": "x"}]}, "lines"),
    ("no such customer", "/api/orders", _order("{sku}", customer="ZZZ999"), "customer"),
    ("malformed customer", "/api/orders", _order("{sku}", customer="abc"), "customer"),
    ("no such product", "/api/orders", _order(str(uuid.UUID(int=1))), "lines"),
    ("embedded db_field", "/api/orders", _order("{sku}", shipping={"c": "Lyon"}), "shipping"),
    ("radius below min", "/api/circle", {"name": "c", "radius": -1}, "radius"),
    ("square field on circle", "/api/circle", {"name": "c", "side": 1}, "side"),
    ("no such author", "/api/books", {"title": "T", "author": str(ObjectId())}, "author"),
    ("no such subject", "/api/comment", {"subject": {"_cls": "Customer", "id": "ZZZ999"}, "body": "x"}, "subject"),
]


COLLECTIONS = {
    "/api/customers": "customers",
    "/api/products": "products",
    "/api/orders": "orders",
    "/api/circle": "shapes",
    "/api/books": "books",
    "/api/comment": "comment",
}


def stored_count(collection: str) -> int:
    return int(restengine.db.get_database()[collection].count_documents({}))


def _fill(value: Any, sku: str) -> Any:
    return json.loads(json.dumps(value).replace("{sku}", sku))


@pytest.mark.parametrize(("what", "path", "body", "field"), INVALID, ids=[case[0] for case in INVALID])
def test_invalid_creates_are_422_naming_the_field(
    client: FlaskClient, what: str, path: str, body: Any, field: str
) -> None:
    _, pen, _ = shop()
    collection = COLLECTIONS[path]
    before = stored_count(collection)
    problem(client.post(path, json=_fill(body, str(pen.sku))), 422, field)
    assert stored_count(collection) == before


@pytest.mark.parametrize("code", ["abc123", "AB1234", "A"])
def test_customer_code_must_match_its_pattern(client: FlaskClient, code: str) -> None:
    body = problem(client.post("/api/customers", json=new_customer(code=code)), 422)
    assert {"code", "id"} & set(body["errors"]), body
    assert Customer.objects.count() == 0


def test_clean_refuses_an_order_without_lines(client: FlaskClient) -> None:
    shop()
    body = problem(client.post("/api/orders", json={"customer": "ABC123", "lines": []}), 422)
    assert "an order needs at least one line" in json.dumps(body)
    assert Order.objects.count() == 1


def test_duplicate_email_is_409(client: FlaskClient) -> None:
    ok(client.post("/api/customers", json=new_customer()), 201)
    problem(client.post("/api/customers", json=new_customer(code="NEW002")), 409)
    assert Customer.objects.count() == 1


def test_duplicate_primary_key_is_409_and_keeps_the_original(client: FlaskClient) -> None:
    shop()
    problem(client.post("/api/customers", json=new_customer(code="ABC123", name="Impostor")), 409)
    assert Customer.objects.get(code="ABC123").name == "Ada"


# PUT


def test_put_replaces_the_whole_document(client: FlaskClient) -> None:
    shop()
    response = client.put("/api/customers/ABC123", json={"name": "Ada B", "email": "adab@example.com"})
    body = ok(response)
    assert body["id"] == "ABC123" and body["name"] == "Ada B"
    assert body.get("joined") is None and not body.get("tags")
    strong_etag(response)
    stored = raw("customers", "ABC123")
    assert "j" not in stored and not stored.get("tags")
    assert set(stored) <= stored_keys(Customer)


def test_put_defaults_missing_optional_fields(client: FlaskClient) -> None:
    _, pen, placed = shop()
    Order.objects(id=placed.id).update(set__status="paid", set__note="ring twice")
    body = ok(client.put(f"/api/orders/{placed.id}", json=_order(str(pen.sku))))
    assert body["status"] == "open" and body.get("note") is None and body["total"] == "1.00"
    stored = raw("orders", placed.id)
    assert stored["status"] == "open" and "note" not in stored and "shipping" not in stored
    assert set(stored) <= stored_keys(Order)


@pytest.mark.parametrize(("body", "field"), [({"email": "x@example.com"}, "name"), ({"name": "A", "nope": 1}, "nope")])
def test_put_is_validated_as_a_create(client: FlaskClient, body: dict[str, Any], field: str) -> None:
    shop()
    before = raw("customers", "ABC123")
    problem(client.put("/api/customers/ABC123", json=body), 422, field)
    assert raw("customers", "ABC123") == before


# PATCH


@pytest.mark.parametrize("content_type", [MERGE_PATCH, "application/json"])
def test_patch_merges_and_null_removes(client: FlaskClient, content_type: str) -> None:
    shop()
    before = raw("customers", "ABC123")
    body = ok(patch(client, "/api/customers/ABC123", {"name": "Ada B", "joined": None}, content_type))
    assert body["name"] == "Ada B" and body.get("joined") is None
    assert body["email"] == "abc123@example.com" and body["tags"] == ["vip"]
    stored = raw("customers", "ABC123")
    assert set(stored) == set(before) - {"j"}
    assert stored["mail"] == before["mail"] and stored["name"] == "Ada B"


def test_patch_merges_nested_objects(client: FlaskClient) -> None:
    _, _, placed = shop()
    body = ok(patch(client, f"/api/orders/{placed.id}", {"shipping": {"city": "Paris"}}))
    assert body["shipping"] == {"street": "1 rue Neuve", "city": "Paris", "country": "FR"}
    stored = raw("orders", placed.id)
    assert stored["shipping"] == {"street": "1 rue Neuve", "c": "Paris", "country": "FR"}
    assert set(stored) <= stored_keys(Order)


def test_patch_runs_clean(client: FlaskClient) -> None:
    _, pen, placed = shop()
    line = {"product": str(pen.sku), "quantity": 4, "unit_price": "12.50"}
    assert ok(patch(client, f"/api/orders/{placed.id}", {"lines": [line]}))["total"] == "50.00"
    assert Order.objects.get(id=placed.id).total == Decimal("50.00")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/customers/ABC123", {"name": None}, "name"),
        ("/api/customers/ABC123", {"nope": 1}, "nope"),
        ("/api/customers/ABC123", {"mail": "x@example.com"}, "mail"),
        ("/api/customers/ABC123", {"email": "not-an-email"}, "email"),
        ("/api/orders/{order}", {"status": "lost"}, "status"),
        ("/api/orders/{order}", {"shipping": {"c": "Paris"}}, "shipping"),
    ],
)
def test_invalid_patches_are_422_and_change_nothing(
    client: FlaskClient, path: str, body: dict[str, Any], field: str
) -> None:
    _, _, placed = shop()
    path = path.replace("{order}", str(placed.id))
    before = raw("customers", "ABC123"), raw("orders", placed.id)
    problem(patch(client, path, body), 422, field)
    assert (raw("customers", "ABC123"), raw("orders", placed.id)) == before


def test_patch_emptying_lines_is_refused_by_clean(client: FlaskClient) -> None:
    _, _, placed = shop()
    before = raw("orders", placed.id)
    body = problem(patch(client, f"/api/orders/{placed.id}", {"lines": []}), 422)
    assert "an order needs at least one line" in json.dumps(body)
    assert raw("orders", placed.id) == before


@pytest.mark.parametrize("body", [[1, 2], "name", 42])
def test_patch_with_a_non_object_is_a_client_error(client: FlaskClient, body: Any) -> None:
    shop()
    response = patch(client, "/api/customers/ABC123", body)
    assert response.status_code in (400, 422)
    problem(response, response.status_code)


# DELETE


def test_delete_is_204_then_404(client: FlaskClient) -> None:
    customer("DEF456", "Dee")
    response = client.delete("/api/customers/DEF456")
    assert response.status_code == 204 and response.get_data() == b""
    problem(client.get("/api/customers/DEF456"), 404)
    problem(client.delete("/api/customers/DEF456"), 404)


def test_deleting_a_customer_with_orders_is_409(client: FlaskClient) -> None:
    shop()
    problem(client.delete("/api/customers/ABC123"), 409)
    assert Customer.objects(code="ABC123").count() == 1


# Request mistakes


def test_wrong_content_type_is_415(client: FlaskClient) -> None:
    shop()
    problem(client.post("/api/customers", data=json.dumps(new_customer()), content_type="text/plain"), 415)
    problem(patch(client, "/api/customers/ABC123", {"name": "x"}, content_type="text/plain"), 415)
    problem(client.put("/api/customers/ABC123", data=json.dumps({"name": "x"}), content_type="text/plain"), 415)
    assert Customer.objects.count() == 1 and Customer.objects.get(code="ABC123").name == "Ada"


@pytest.mark.parametrize("data", ['{"name": ', "{'name': 'single quotes'}", "", "\xff"])
def test_malformed_json_is_400(client: FlaskClient, data: str) -> None:
    problem(client.post("/api/customers", data=data, content_type="application/json"), 400)


@pytest.mark.parametrize("data", ["42", '"text"', "null", "true", "[1, 2]", "[[]]"])
def test_a_body_that_is_not_an_object_or_array_of_objects_is_a_client_error(client: FlaskClient, data: str) -> None:
    response = client.post("/api/customers", data=data, content_type="application/json")
    assert response.status_code in (400, 422)
    problem(response, response.status_code)
    assert Customer.objects.count() == 0


def test_a_body_over_one_mebibyte_is_413(client: FlaskClient) -> None:
    data = json.dumps(new_customer(name="x" * (1024 * 1024)))
    problem(client.post("/api/customers", data=data, content_type="application/json"), 413)
    assert Customer.objects.count() == 0


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/api/customers", {"GET", "POST"}),
        ("PUT", "/api/customers", {"GET", "POST"}),
        ("POST", "/api/customers/ABC123", {"GET", "PUT", "PATCH", "DELETE"}),
    ],
)
def test_methods_not_allowed_are_405_with_allow(client: FlaskClient, method: str, path: str, allowed: set[str]) -> None:
    shop()
    response = client.open(path, method=method, json={})
    problem(response, 405)
    offered = {m.strip() for m in response.headers["Allow"].split(",")}
    assert allowed <= offered and method not in offered
