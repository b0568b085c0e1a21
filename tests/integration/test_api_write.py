"""Creating through HTTP (POST), validated by the legacy Documents themselves, and malformed requests."""

from __future__ import annotations

import io
import json
import re
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from bson import ObjectId
from flask import Flask
from flask.testing import FlaskClient

from restengine.demo.bookstore import Author, Book
from tests.integration.api_helpers import (
    COMMANDS,
    UTC_2024,
    database_name,
    ids,
    names,
    new_customer,
    ok,
    order_body,
    parse_time,
    patch,
    problem,
    raw,
    shop,
    stored_count,
    stored_keys,
    strong_etag,
)
from tests.legacy_models import Comment, Customer, Order, Product

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
    (
        "quantity over 64 bits",
        "/api/orders",
        order_body("{sku}", lines=[{"product": "{sku}", "quantity": 2**63}]),
        "lines",
    ),
    ("blob not base64", "/api/products", {"name": "P", "price": "1", "blob": "not base64!"}, "blob"),
    ("choices", "/api/orders", order_body("{sku}", status="lost"), "status"),
    ("max_length", "/api/orders", order_body("{sku}", note="x" * 201), "note"),
    ("quantity below min", "/api/orders", order_body("{sku}", lines=[{"product": "{sku}", "quantity": 0}]), "lines"),
    ("quantity not int", "/api/orders", order_body("{sku}", lines=[{"product": "{sku}", "quantity": "x"}]), "lines"),
    ("no such customer", "/api/orders", order_body("{sku}", customer="ZZZ999"), "customer"),
    ("malformed customer", "/api/orders", order_body("{sku}", customer="abc"), "customer"),
    ("no such product", "/api/orders", order_body(str(uuid.UUID(int=1))), "lines"),
    ("embedded db_field", "/api/orders", order_body("{sku}", shipping={"c": "Lyon"}), "shipping"),
    ("radius below min", "/api/circle", {"name": "c", "radius": -1}, "radius"),
    ("square field on circle", "/api/circle", {"name": "c", "side": 1}, "side"),
    ("no such author", "/api/books", {"title": "T", "author": str(ObjectId())}, "author"),
    ("empty ObjectId reference", "/api/books", {"title": "T", "author": ""}, "author"),
    ("empty ObjectId id", "/api/books", {"id": "", "title": "T"}, "id"),
    ("null order line", "/api/orders", order_body("{sku}", lines=[None]), "lines"),
    ("no such subject", "/api/comment", {"subject": {"_cls": "Customer", "id": "ZZZ999"}, "body": "x"}, "subject"),
    ("published before year 1", "/api/books", {"title": "T", "published": "0001-01-01T00:00:00+01:00"}, "published"),
    ("published after 9999", "/api/books", {"title": "T", "published": "9999-12-31T23:59:59-01:00"}, "published"),
    ("joined before year 1", "/api/customers", new_customer(joined="0001-01-01T00:00:00+01:00"), "joined"),
    (
        "subject of an embedded class",
        "/api/comment",
        {"subject": {"_cls": "Address", "id": "x"}, "body": "x"},
        "subject",
    ),
    (
        "subject of an embedded line",
        "/api/comment",
        {"subject": {"_cls": "OrderLine", "id": "x"}, "body": "x"},
        "subject",
    ),
    ("subject id an object", "/api/comment", {"subject": {"_cls": "Customer", "id": {"a": 1}}, "body": "x"}, "subject"),
    ("subject id missing", "/api/comment", {"subject": {"_cls": "Customer"}, "body": "x"}, "subject"),
    ("string id an object", "/api/customers", {"id": {"a": 1}, "name": "N"}, "id"),
    ("string id a number", "/api/customers", {"id": 123456, "name": "N"}, "id"),
    ("reference id a list", "/api/orders", order_body("{sku}", customer=["ABC123"]), "customer"),
]


COLLECTIONS = {
    "/api/customers": "customers",
    "/api/products": "products",
    "/api/orders": "orders",
    "/api/circle": "shapes",
    "/api/books": "books",
    "/api/comment": "comment",
}


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


@pytest.mark.parametrize("published", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_patch_with_a_date_out_of_range_is_422(client: FlaskClient, published: str) -> None:
    book = ok(client.get(f"/api/books/{Book(title='T', author=Author(name='A').save()).save().id}"))
    problem(patch(client, f"/api/books/{book['id']}", {"published": published}), 422, "published")
    assert ok(client.get(f"/api/books/{book['id']}")) == book


@pytest.mark.parametrize("body", [[{"id": "", "title": "T"}], [{"title": "T", "author": "not-an-id"}]])
def test_an_array_with_a_malformed_id_is_422(client: FlaskClient, body: list[Any]) -> None:
    problem(client.post("/api/books", json=body), 422, "0")


@pytest.mark.parametrize("code", ["abc123", "AB1234", "A"])
def test_customer_code_must_match_its_pattern(client: FlaskClient, code: str) -> None:
    body = problem(client.post("/api/customers", json=new_customer(code=code)), 422)
    assert names(body["errors"], "code") or names(body["errors"], "id"), body
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


@pytest.mark.parametrize(
    "body",
    [
        new_customer(name={"$gt": ""}),
        new_customer(**{"$where": "1"}),
        new_customer(**{"tags.0": "x"}),
        new_customer(**{"_id": "ZZZ999"}),
        new_customer(tags=[{"$ne": None}]),
    ],
    ids=["operator value", "operator key", "dotted key", "_id", "operator in list"],
)
def test_operators_and_stored_names_in_bodies_are_refused(client: FlaskClient, body: dict[str, Any]) -> None:
    response = client.post("/api/customers", json=body)
    problem(response, 422)
    assert stored_count("customers") == 0


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


def test_a_413_reads_the_refused_body_so_a_kept_alive_connection_stays_usable(client: FlaskClient) -> None:
    data = json.dumps(new_customer(name="x" * (2 * 1024 * 1024))).encode()
    stream = io.BytesIO(data)
    response = client.post("/api/customers", input_stream=stream, content_type="application/json",
                           content_length=len(data))  # fmt: skip
    problem(response, 413)
    assert stream.tell() == len(data) and "Connection" not in response.headers  # hop-by-hop: not the app's


def test_a_post_answers_what_a_get_of_each_created_item_shows(client: FlaskClient) -> None:
    one = client.post("/api/customers", json=new_customer())
    assert one.headers["ETag"] == client.get(one.headers["Location"]).headers["ETag"]
    many = ok(
        client.post("/api/customers", json=[new_customer(code=f"NEW00{i}", email=f"n{i}@example.com") for i in (2, 3)]),
        201,
    )
    assert [item["id"] for item in many["items"]] == ["NEW002", "NEW003"]
    assert many["items"] == [ok(client.get(f"/api/customers/{item['id']}")) for item in many["items"]]


def test_options_on_bulk_is_204_with_allow(client: FlaskClient) -> None:
    response = client.options("/api/customers/_bulk")
    assert response.status_code == 204 and response.headers["Allow"] == "OPTIONS, POST"


@pytest.mark.parametrize("method", ["TRACE", "PROPFIND", "CONNECT", "BREW"])
@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/api/", "GET, HEAD"),
        ("/api/customers", "GET, HEAD, POST"),
        ("/api/customers/ABC123", "DELETE, GET, HEAD, PATCH, PUT"),
        ("/api/customers/_bulk", "POST"),
    ],
)
def test_an_unknown_method_is_405_with_the_resources_own_allow(
    client: FlaskClient, method: str, path: str, allowed: str
) -> None:
    shop()
    response = client.open(path, method=method)
    problem(response, 405)
    assert response.headers["Allow"] == allowed
    assert response.headers["Allow"] == client.open(path, method="PUT" if path == "/api/" else "TRACE").headers["Allow"]


@pytest.mark.parametrize("path", ["/api/", "/api/customers", "/api/customers/ABC123", "/api/customers/_bulk"])
@pytest.mark.parametrize("accept", ["application/xml", "text/html", "application/json;q=0, text/plain"])
def test_an_accept_without_json_is_406(client: FlaskClient, path: str, accept: str) -> None:
    shop()
    method = "POST" if path.endswith("_bulk") else "GET"
    problem(client.open(path, method=method, json=[], headers={"Accept": accept}), 406)


@pytest.mark.parametrize(
    "accept", ["*/*", "application/json", "application/problem+json", "application/*", "text/html, */*;q=0.1", ""]
)
def test_an_accept_taking_json_is_served(client: FlaskClient, accept: str) -> None:
    shop()
    headers = {"Accept": accept} if accept else {}
    assert ok(client.get("/api/customers/ABC123", headers=headers))["id"] == "ABC123"
    problem(client.get("/api/customers/NOPE00", headers=headers), 404)


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


@pytest.mark.parametrize("price", [1e26, "1e40", "NaN", "Infinity", "-inf"])
def test_a_decimal_the_field_cannot_hold_is_422(client: FlaskClient, price: Any) -> None:
    problem(client.post("/api/products", json={"name": "P", "price": price}), 422, "price")
    problem(client.post("/api/products", json=[{"name": "P", "price": price}]), 422, "0")


@pytest.mark.parametrize("method", ["PUT", "POST", "PATCH", "DELETE"])
def test_the_index_is_read_only(client: FlaskClient, method: str) -> None:
    response = client.open("/api/", method=method)
    problem(response, 405)
    assert response.headers["Allow"] == "GET, HEAD"
    assert client.options("/api/").headers["Allow"] == "GET, HEAD, OPTIONS"


# Conflicts: the API's field names, never the database's internals


def assert_no_internals(body: dict[str, Any]) -> None:
    """Nothing of MongoDB's error text, the index, the collection, stored names or the classes."""
    text = json.dumps(body)
    for leak in ("E11000", "dup key", "index:", "collection:", "mail_1", "_id_", database_name(), "nia@example.com"):
        assert leak not in text, (leak, body)
    for pattern in (r"\bmail\b", r"\bcust\b", r"\bCustomer\b", r"\bOrder\b"):
        assert not re.search(pattern, text), (pattern, body)


def test_a_unique_violation_on_post_names_the_field_not_the_index(client: FlaskClient) -> None:
    ok(client.post("/api/customers", json=new_customer()), 201)
    body = problem(client.post("/api/customers", json=new_customer(code="NEW002")), 409)
    assert body["detail"] == "Another item has the same email."
    assert_no_internals(body)


def test_a_unique_violation_in_an_array_post_names_the_item_and_the_field(client: FlaskClient) -> None:
    ok(client.post("/api/customers", json=new_customer()), 201)
    batch = [new_customer(code="NEW002", email="two@example.com"), new_customer(code="NEW003")]
    body = problem(client.post("/api/customers", json=batch), 409)
    assert body["detail"] == "Another item has the same email. Nothing was inserted."
    assert body["errors"] == {"1": {"email": "must be unique"}}
    assert_no_internals(body)
    assert Customer.objects.count() == 1


def test_a_duplicate_primary_key_in_an_array_post_is_named_id(client: FlaskClient) -> None:
    ok(client.post("/api/customers", json=new_customer()), 201)
    body = problem(client.post("/api/customers", json=[new_customer(email="other@example.com")]), 409)
    assert body["errors"] == {"0": {"id": "must be unique"}}
    assert_no_internals(body)


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_a_unique_violation_on_put_or_patch_shows_no_internals(client: FlaskClient, method: str) -> None:
    ok(client.post("/api/customers", json=new_customer()), 201)
    ok(client.post("/api/customers", json=new_customer(code="NEW002", email="two@example.com")), 201)
    if method == "PUT":
        response = client.put("/api/customers/NEW002", json={"name": "Two", "email": "nia@example.com"})
    else:
        response = patch(client, "/api/customers/NEW002", {"email": "nia@example.com"})
    body = problem(response, 409)
    assert body["detail"] == "Another item has the same email."
    assert_no_internals(body)
    assert Customer.objects.get(code="NEW002").email == "two@example.com"


def test_a_unique_violation_in_bulk_names_the_field_not_the_index(client: FlaskClient) -> None:
    ok(client.post("/api/customers", json=new_customer()), 201)
    ok(client.post("/api/customers", json=new_customer(code="NEW002", email="two@example.com")), 201)
    operations = [
        {"op": "insert", "document": new_customer(code="NEW003")},
        {"op": "update", "id": "NEW002", "patch": {"email": "nia@example.com"}},
    ]
    response = client.post("/api/customers/_bulk", json={"ordered": False, "operations": operations})
    assert response.status_code == 409
    results = response.get_json()["results"]
    assert [(r["status"], r["error"]) for r in results] == [(409, "Another item has the same email.")] * 2
    assert_no_internals(response.get_json())


def test_a_refused_delete_names_no_class_or_stored_field(client: FlaskClient) -> None:
    """MongoEngine's message names the referring Document class and field ("Order.customer refers to it")."""
    shop()
    body = problem(client.delete("/api/customers/ABC123"), 409)
    assert body["detail"] == "Other items refer to this one; it cannot be deleted while they do."
    assert_no_internals(body)
    response = client.post("/api/customers/_bulk", json={"operations": [{"op": "delete", "id": "ABC123"}]})
    body = problem(response, 422)
    assert body["errors"] == {"0": {"id": "other items refer to it"}}
    assert_no_internals(body)
    assert Customer.objects(code="ABC123").count() == 1


def test_a_unique_violation_on_a_hidden_field_names_no_field(app: Flask, client: FlaskClient) -> None:
    """Two customers without an email collide on the (non-sparse) unique index of the hidden ``email``."""
    app.extensions["restengine.api"].register(Customer, hidden=["email"])
    ok(client.post("/api/customers", json={"code": "NEW001", "name": "Nia"}), 201)
    unknown = "Another item has the same value for a field that must be unique."
    body = problem(client.post("/api/customers", json=[{"code": "NEW002", "name": "Two"}]), 409)
    assert body["errors"] == {"0": {"": unknown}}
    response = client.post(
        "/api/customers/_bulk", json={"operations": [{"op": "insert", "document": {"code": "NEW003", "name": "Three"}}]}
    )
    assert response.status_code == 409 and response.get_json()["results"][0]["error"] == unknown
    for answer in (
        body,
        response.get_json(),
        problem(client.post("/api/customers", json={"code": "NEW004", "name": "Four"}), 409),
    ):
        assert "email" not in json.dumps(answer)
        assert_no_internals(answer)
