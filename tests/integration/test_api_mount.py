"""Mounting the API into an existing Flask app, on a Blueprint, with write hooks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import mongoengine
import pytest
from flask import Blueprint, Flask
from flask.testing import FlaskClient
from pymongo import MongoClient

from restengine import Api
from restengine.errors import Problem
from tests.keys import TEST_SECRET
from tests.legacy_models import Customer

calls: list[tuple[str, Any]] = []


def refuse_vip(doc: Any) -> None:
    calls.append(("before_create", doc.pk))
    if doc.name == "VIP":
        raise Problem("VIP customers are created by the back office.", status=403)


def record(event: str) -> Any:
    return lambda doc: calls.append((event, doc.pk))


def refuse_locked(doc: Any) -> None:
    if "locked" in (doc.tags or []):
        raise Problem("Locked customers cannot be deleted.", status=409)


@pytest.fixture
def legacy_app(mongodb_uri: str) -> Iterator[Flask]:
    """A legacy app: its own connection, its own routes and error pages; the API on a Blueprint."""
    mongoengine.connect(host=mongodb_uri, alias="default", uuidRepresentation="pythonLegacy")
    app = Flask("legacy")

    @app.get("/hello")
    def hello() -> str:
        return "legacy route"

    @app.errorhandler(404)
    def html_404(_: Exception) -> tuple[str, int]:
        return "<h1>legacy not found</h1>", 404

    bp = Blueprint("rest", __name__)
    api = Api(bp, secret_key=TEST_SECRET)
    api.register(
        Customer,
        before_create=refuse_vip,
        after_create=record("after_create"),
        before_update=record("before_update"),
        after_update=record("after_update"),
        before_delete=refuse_locked,
        after_delete=record("after_delete"),
    )
    app.register_blueprint(bp)
    calls.clear()
    yield app
    mongoengine.disconnect()


@pytest.fixture
def client(legacy_app: Flask) -> FlaskClient:
    return legacy_app.test_client()


def test_api_lives_beside_the_apps_own_routes(legacy_app: Flask, client: FlaskClient) -> None:
    assert client.get("/hello").get_data(as_text=True) == "legacy route"
    assert legacy_app.extensions["restengine.api"].resources.keys() == {"customers"}
    index = client.get("/api/").get_json()
    assert index == {"resources": [{"name": "customers", "url": "http://localhost/api/customers"}]}
    assert client.get("/api/customers").get_json() == {"items": [], "next": None}


def test_api_errors_are_problem_json_and_the_apps_stay_its_own(client: FlaskClient) -> None:
    api_missing = client.get("/api/customers/NOPE00")
    assert api_missing.status_code == 404 and api_missing.mimetype == "application/problem+json"
    assert client.get("/api/nothing-here").mimetype == "application/problem+json"
    assert client.get("/not-the-api").get_data(as_text=True) == "<h1>legacy not found</h1>"


def test_hooks_run_around_writes_and_can_refuse_them(client: FlaskClient, mongodb_uri: str) -> None:
    refused = client.post("/api/customers", json={"id": "VIP001", "name": "VIP", "email": "v@example.com"})
    assert refused.status_code == 403 and refused.mimetype == "application/problem+json"
    with MongoClient(mongodb_uri) as raw:
        assert raw.get_default_database().customers.count_documents({}) == 0, "a refused create writes nothing"

    created = client.post("/api/customers", json={"id": "ABC001", "name": "Ann", "email": "a@example.com"})
    assert created.status_code == 201
    patched = client.patch("/api/customers/ABC001", json={"tags": ["locked"]})
    assert patched.status_code == 200
    denied = client.delete("/api/customers/ABC001")
    assert denied.status_code == 409
    assert client.get("/api/customers/ABC001").status_code == 200, "a refused delete deletes nothing"
    client.patch("/api/customers/ABC001", json={"tags": None})
    assert client.delete("/api/customers/ABC001").status_code == 204
    assert calls == [
        ("before_create", "VIP001"),
        ("before_create", "ABC001"),
        ("after_create", "ABC001"),
        ("before_update", "ABC001"),
        ("after_update", "ABC001"),
        ("before_update", "ABC001"),
        ("after_update", "ABC001"),
        ("after_delete", "ABC001"),
    ]
