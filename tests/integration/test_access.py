"""Keeping people out, through the real app on the real database and Redis: keys, JWTs, the policy, the cache."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Blueprint, Flask
from flask.testing import FlaskClient

import restengine.db
from restengine.api import Api
from restengine.auth.keys import COLLECTION, KeyStore
from restengine.auth.principal import Principal
from tests.integration.api_helpers import (
    customer,
    legacy_app,
    legacy_registry,
    new_customer,
    ok,
    problem,
    product,
    protected_app,
)
from tests.keys import OTHER_SECRET, TEST_SECRET

JWT_SECRET = OTHER_SECRET
POLICY = """
[anonymous]
products = ["read"]

[roles.clerk]
customers = ["read", "create", "update"]
orders = ["read", "create"]

[roles.auditor]
"*" = ["read"]
"""


def make(mongodb_uri: str, redis_url: str | None = None, **config: Any) -> Flask:
    """The legacy app with the access check on, accepting HS256 JWTs signed with ``JWT_SECRET``."""
    return legacy_app(
        mongodb_uri, redis_url, **{"RESTENGINE_AUTH": "on", "RESTENGINE_JWT_SECRET": JWT_SECRET, **config}
    )


@pytest.fixture
def policy(tmp_path: Path) -> str:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    return str(path)


@pytest.fixture
def app(mongodb_uri: str, redis_url: str, policy: str) -> Iterator[Flask]:
    with protected_app(mongodb_uri, redis_url, RESTENGINE_POLICY=policy) as app:
        yield app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def key(role: str) -> str:
    return KeyStore(lambda: restengine.db.get_database()[COLLECTION]).create(role)[1]


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def token(sub: str = "u1", roles: Any = ("clerk",), **claims: Any) -> str:
    payload = {"sub": sub, "roles": list(roles), "exp": int(time.time()) + 300, **claims}
    return jwt.encode(payload, JWT_SECRET, algorithm="HS256")


def test_anonymous_callers_get_what_the_policy_gives_them_and_a_challenge_otherwise(client: FlaskClient) -> None:
    product("Pen", "1.50")
    customer("ABC123", "Ada")
    assert len(ok(client.get("/api/products"))["items"]) == 1
    for response in (client.get("/api/customers"), client.get("/api/customers/ABC123")):
        body = problem(response, 401)
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert "Authorization: Bearer" in body["detail"]
    problem(client.post("/api/products", json={"name": "Ink", "price": "1"}), 401)
    assert client.get("/api/").status_code == 200 and client.get("/openapi.json").status_code == 200


def test_a_key_acts_with_its_role(client: FlaskClient) -> None:
    customer("ABC123", "Ada")
    clerk = bearer(key("clerk"))
    ok(client.post("/api/customers", json=new_customer(), headers=clerk), 201)
    ok(client.patch("/api/customers/NEW001", json={"name": "Nina"}, headers=clerk))
    body = problem(client.delete("/api/customers/NEW001", headers=clerk), 403)
    assert "delete customers" in body["detail"]
    problem(client.post("/api/products", json={"name": "Ink", "price": "1"}, headers=clerk), 403)
    assert ok(client.get("/api/products", headers=clerk))["items"] == [], "and what anonymous callers may"


def test_bulk_needs_the_action_of_every_operation_it_holds(client: FlaskClient) -> None:
    customer("ABC123", "Ada")
    clerk = bearer(key("clerk"))
    insert = {"op": "insert", "document": new_customer()}
    delete = {"op": "delete", "id": "ABC123"}
    problem(client.post("/api/customers/_bulk", json={"operations": [insert, delete]}, headers=clerk), 403)
    assert client.get("/api/customers/NEW001", headers=clerk).status_code == 404, "nothing was written"
    assert ok(client.post("/api/customers/_bulk", json={"operations": [insert]}, headers=clerk))["results"]
    problem(client.post("/api/customers/_bulk", json={"operations": [insert]}), 401)


@pytest.mark.parametrize(
    "header",
    [
        "Bearer rek_0123456789abcdef_not-the-secret",
        "Bearer rek_malformed",
        "Basic dXNlcjpwYXNz",
        "Bearer ",
        "Bearer x.y.z",
    ],
)
def test_invalid_credentials_are_401_even_where_anonymous_callers_may_read(client: FlaskClient, header: str) -> None:
    response = client.get("/api/products", headers={"Authorization": header})
    problem(response, 401)
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    credential = header.partition(" ")[2]
    if credential:
        assert credential not in response.get_data(as_text=True), "a credential is never echoed"


def test_a_revoked_key_is_refused_at_once_in_the_process_that_revoked_it(app: Flask, client: FlaskClient) -> None:
    store = app.extensions["restengine.api"].access.keys
    info, plain = store.create("auditor")
    assert client.get("/api/customers", headers=bearer(plain)).status_code == 200
    assert store.revoke(info.id)
    problem(client.get("/api/customers", headers=bearer(plain)), 401)


def test_a_jwt_acts_with_the_roles_it_carries(client: FlaskClient) -> None:
    ok(client.post("/api/customers", json=new_customer(), headers=bearer(token())), 201)
    problem(client.delete("/api/customers/NEW001", headers=bearer(token())), 403)
    problem(client.get("/api/customers", headers=bearer(token(roles=()))), 403)
    expired = token(exp=int(time.time()) - 3600)
    problem(client.get("/api/customers", headers=bearer(expired)), 401)
    forged = jwt.encode({"sub": "u1", "roles": ["clerk"], "exp": int(time.time()) + 60}, "x" * 40, algorithm="HS256")
    problem(client.get("/api/customers", headers=bearer(forged)), 401)


def test_a_cached_read_is_served_only_to_callers_the_policy_lets_read(client: FlaskClient) -> None:
    customer("ABC123", "Ada")
    auditor = bearer(key("auditor"))
    assert client.get("/api/customers/ABC123", headers=auditor).headers["X-Cache"] == "miss"
    assert client.get("/api/customers/ABC123", headers=auditor).headers["X-Cache"] == "hit"
    refused = client.get("/api/customers/ABC123")
    problem(refused, 401)
    assert "X-Cache" not in refused.headers, "the cache never answers a caller the policy refuses"
    assert client.get("/api/customers/ABC123", headers=bearer(token())).headers["X-Cache"] == "hit"


def test_without_a_policy_everyone_reads_and_writes_need_an_admin_credential(mongodb_uri: str) -> None:
    with legacy_registry():
        app = make(mongodb_uri)
        try:
            client = app.test_client()
            customer("ABC123", "Ada")
            ok(client.get("/api/customers/ABC123"))
            body = problem(client.post("/api/customers", json=new_customer()), 401)
            assert "restengine keys create --role admin" in body["detail"]
            ok(client.post("/api/customers", json=new_customer(), headers=bearer(key("admin"))), 201)
            problem(client.delete("/api/customers/ABC123", headers=bearer(key("clerk"))), 403)
        finally:
            restengine.db.close_all()


def test_auth_off_opens_everything_and_says_so(mongodb_uri: str, caplog: pytest.LogCaptureFixture) -> None:
    with legacy_registry():
        app = make(mongodb_uri, RESTENGINE_AUTH="off")
        try:
            assert "RESTENGINE_AUTH=off" in caplog.text
            ok(app.test_client().post("/api/customers", json=new_customer()), 201)
        finally:
            restengine.db.close_all()


def test_a_host_app_can_bring_its_own_login(mongodb_uri: str) -> None:
    def from_session(environ: Any) -> Principal | None:
        user = environ.get("HTTP_X_TEST_USER")
        return Principal("app", user, frozenset({"admin"})) if user else None

    with legacy_registry():
        host = Flask(__name__)
        from tests.integration.api_helpers import make_app

        make_app(mongodb_uri)  # registers the connection for this database
        bp = Blueprint("rest", __name__)
        Api(bp, secret_key=TEST_SECRET, authenticate=from_session).register_module("tests.legacy_models")
        host.register_blueprint(bp)
        try:
            client = host.test_client()
            problem(client.post("/api/customers", json=new_customer()), 401)
            ok(client.post("/api/customers", json=new_customer(), headers={"X-Test-User": "ada"}), 201)
            ok(client.get("/api/customers/NEW001"))
        finally:
            restengine.db.close_all()


def test_the_openapi_document_says_how_to_authenticate_and_what_a_refusal_looks_like(client: FlaskClient) -> None:
    from openapi_spec_validator import validate

    document = ok(client.get("/openapi.json"))
    validate(document)
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["bearer"]["description"],
    }
    for path, item in document["paths"].items():
        for method, operation in ((k, v) for k, v in item.items() if k != "parameters"):
            secured = path.startswith("/api/") and path != "/api/"
            assert ("401" in operation["responses"]) is secured, (method, path)
            assert ("403" in operation["responses"]) is secured, (method, path)
            assert ("security" in operation) is secured, (method, path)
    unauthorized = document["components"]["responses"]["Unauthorized"]
    assert "WWW-Authenticate" in unauthorized["headers"]


def test_up_makes_the_first_admin_key_once(app: Flask, capsys: pytest.CaptureFixture[str]) -> None:
    from restengine.ops.stack import first_admin_key

    made = first_admin_key()
    assert made is not None
    printed = capsys.readouterr().out
    assert printed.strip().splitlines()[-1] == made and printed.count(made) == 1
    assert first_admin_key() is None and made not in capsys.readouterr().out, "shown only once"
    assert app.extensions["restengine.api"].access.keys.authenticate(made).roles == {"admin"}
