"""Per-resource options given to ``Api.register``: hidden, read-only, filterable, sortable, limits, methods."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.integration.api_helpers import api_app, customer, ids, items, ok, problem, raw
from tests.legacy_models import Customer

RESTRICTED: dict[str, Any] = {
    "hidden": ["email"],
    "read_only": ["joined"],
    "filterable": {"name": ["eq", "icontains"]},
    "sortable": ["name"],
    "default_limit": 2,
    "max_limit": 3,
    "methods": ["GET"],
}


@pytest.fixture
def app(mongodb_uri: str) -> Iterator[Flask]:
    with api_app(mongodb_uri, documents="tests.legacy_models") as app:
        yield app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def four(app: Flask) -> None:
    for i, name in enumerate(["Ada", "Bob", "Cat", "Dan"]):
        customer(f"CUS{i:03d}", name, joined=datetime(2024, 1, 1 + i), tags=["vip"])


def register(app: Flask, **options: Any) -> None:
    app.extensions["restengine.api"].register(Customer, **options)


def test_hidden_fields_are_never_shown(app: Flask, client: FlaskClient, four: None) -> None:
    register(app, **RESTRICTED)
    assert "email" not in ok(client.get("/api/customers/CUS000"))
    assert all("email" not in item and "mail" not in item for item in items(client, "/api/customers"))


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("email=cus000@example.com", "email"),
        ("tags=vip", "tags"),
        ("joined__gt=2024-01-01T00:00:00Z", "joined__gt"),
        ("name__startswith=A", "name__startswith"),
        ("sort=joined", "sort"),
        ("sort=email", "sort"),
        ("fields=name,email", "fields"),
        ("limit=4", "limit"),
    ],
)
def test_restricted_queries_are_400(app: Flask, client: FlaskClient, four: None, query: str, param: str) -> None:
    register(app, **RESTRICTED)
    problem(client.get(f"/api/customers?{query}"), 400, param)


def test_allowed_filters_sorts_and_limits(app: Flask, client: FlaskClient, four: None) -> None:
    register(app, **RESTRICTED)
    assert ids(client, "/api/customers?name=Bob") == ["CUS001"]
    assert ids(client, "/api/customers?name__icontains=A&sort=name&limit=3") == ["CUS000", "CUS002", "CUS003"]
    assert ids(client, "/api/customers?sort=-name&limit=3") == ["CUS003", "CUS002", "CUS001"]
    first = ok(client.get("/api/customers?sort=name"))
    assert [item["id"] for item in first["items"]] == ["CUS000", "CUS001"], "default_limit"
    assert first["next"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/customers"),
        ("PUT", "/api/customers/CUS000"),
        ("PATCH", "/api/customers/CUS000"),
        ("DELETE", "/api/customers/CUS000"),
    ],
)
def test_methods_outside_the_allowed_ones_are_405(
    app: Flask, client: FlaskClient, four: None, method: str, path: str
) -> None:
    register(app, **RESTRICTED)
    before = raw("customers", "CUS000")
    body = {"code": "NEW001", "name": "Nia", "email": "nia@example.com"}
    response = client.open(path, method=method, data=json.dumps(body), content_type="application/json")
    problem(response, 405)
    assert "GET" in response.headers["Allow"] and method not in response.headers["Allow"]
    assert raw("customers", "CUS000") == before and Customer.objects.count() == 4


def test_bulk_is_refused_when_writes_are_not_allowed(app: Flask, client: FlaskClient, four: None) -> None:
    register(app, **RESTRICTED)
    operations = [{"op": "delete", "id": "CUS000"}]
    response = client.post("/api/customers/_bulk", json={"ordered": True, "operations": operations})
    assert response.status_code in (404, 405)
    assert Customer.objects.count() == 4


def test_read_only_fields_are_shown_but_never_written(app: Flask, client: FlaskClient, four: None) -> None:
    register(app, read_only=["joined"])
    assert ok(client.get("/api/customers/CUS000"))["joined"].startswith("2024-01-01")
    response = client.patch("/api/customers/CUS000", json={"joined": "2030-01-01T00:00:00Z", "name": "Ada B"})
    assert response.status_code in (200, 422), response.get_data(as_text=True)
    assert raw("customers", "CUS000")["j"] == datetime(2024, 1, 1)
    created = client.post(
        "/api/customers",
        json={"code": "NEW001", "name": "Nia", "email": "n@example.com", "joined": "2030-01-01T00:00:00Z"},
    )
    assert created.status_code in (201, 422), created.get_data(as_text=True)
    assert "j" not in (Customer._get_collection().find_one({"_id": "NEW001"}) or {})


def test_registering_again_replaces_the_options(app: Flask, client: FlaskClient, four: None) -> None:
    register(app, **RESTRICTED)
    register(app)
    assert ok(client.get("/api/customers/CUS000"))["email"] == "cus000@example.com"
    assert len(items(client, "/api/customers")) == 4
    ok(client.post("/api/customers", json={"code": "NEW001", "name": "Nia", "email": "nia@example.com"}), 201)


def test_only_the_configured_modules_are_served(client: FlaskClient) -> None:
    names = {r["name"] for r in ok(client.get("/api/"))["resources"]}
    assert names == {"customers", "products", "orders", "shapes", "circle", "square", "comment"}
