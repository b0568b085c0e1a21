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


def test_a_profile_mounts_beside_the_native_api(mongodb_uri: str) -> None:
    """Eve clients on ``/eve`` and native ones on ``/api``: the same documents, each in its own shapes."""
    mongoengine.connect(host=mongodb_uri, alias="default", uuidRepresentation="pythonLegacy")
    try:
        app = Flask("both")
        native, eve = Blueprint("native", __name__), Blueprint("eve", __name__)
        Api(native, secret_key=TEST_SECRET).register(Customer)
        Api(eve, url_prefix="/eve", secret_key=TEST_SECRET, profile="eve", openapi_path=None, docs_path=None).register(
            Customer
        )
        app.register_blueprint(native)
        app.register_blueprint(eve)
        client = app.test_client()
        assert client.post("/api/customers", json={"code": "MNT001", "name": "Mounted"}).status_code == 201
        item = client.get("/eve/customers/MNT001").get_json()
        assert item["_id"] == "MNT001" and item["name"] == "Mounted" and item["_etag"]
        assert client.get("/api/customers/MNT001").get_json()["id"] == "MNT001"
        refused = client.get("/eve/customers?where=" + '{"$where": "1"}')
        assert refused.status_code == 400 and refused.get_json()["_status"] == "ERR", "Eve's error shape, no layer"
        assert client.get("/api/customers?nope=1").mimetype == "application/problem+json"
    finally:
        mongoengine.disconnect(alias="default")
