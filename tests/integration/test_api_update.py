"""Changing and deleting through HTTP: PUT replaces, PATCH merges (RFC 7396), DELETE follows reverse rules."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from flask.testing import FlaskClient

import restengine.db
from tests.integration.api_helpers import (
    MERGE_PATCH,
    customer,
    ok,
    order_body,
    patch,
    problem,
    raw,
    shop,
    stored_keys,
    strong_etag,
)
from tests.legacy_models import Circle, Customer, Order

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
    body = ok(client.put(f"/api/orders/{placed.id}", json=order_body(str(pen.sku))))
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


@pytest.mark.parametrize("path", ["/api/customers/ABC123", "/api/circle/{circle}", "/api/orders/{order}"])
def test_put_accepts_the_representation_a_get_returned(client: FlaskClient, path: str) -> None:
    _, _, placed = shop()
    circle = Circle(name="c", radius=1.0).save()
    path = path.format(circle=circle.id, order=placed.id)
    representation = ok(client.get(path))
    representation["name" if "order" not in path else "note"] = "Changed"
    body = ok(client.put(path, json=representation))
    assert body == representation


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


# The write response is the stored document


def test_a_patch_answers_the_stored_document_and_the_etag_of_the_next_get(client: FlaskClient) -> None:
    circle = Circle(name="c", radius=1.0).save()
    restengine.db.get_database()["shapes"].update_one({"_id": circle.id}, {"$set": {"radius": 5}})  # a legacy int
    url = f"/api/circle/{circle.id}"
    response = patch(client, url, {"name": "d"})
    written = ok(response)
    assert written["radius"] == 5 and isinstance(written["radius"], int) and written["name"] == "d"
    got = client.get(url)
    assert ok(got) == written and response.headers["ETag"] == got.headers["ETag"]
    again = patch(client, url, {"name": "e"}, headers={"If-Match": response.headers["ETag"]})
    assert ok(again)["name"] == "e" and again.headers["ETag"] == client.get(url).headers["ETag"]


def test_a_patch_answers_no_default_that_was_never_stored(client: FlaskClient) -> None:
    _, _, placed = shop()
    restengine.db.get_database()["orders"].update_one({"_id": placed.id}, {"$unset": {"placed": ""}})
    url = f"/api/orders/{placed.id}"
    response = patch(client, url, {"note": "ring twice"})
    body = ok(response)
    stored = raw("orders", placed.id)
    assert stored["note"] == "ring twice" and body["note"] == "ring twice"
    assert ("placed" in stored) == (body.get("placed") is not None)
    assert response.headers["ETag"] == client.get(url).headers["ETag"]


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
