"""Row rules (``where``) and field rules (``hidden``, ``read_only``) per role, on every path to the data."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient

import restengine.db
from tests.integration.api_helpers import (
    customer,
    legacy_app,
    legacy_registry,
    order,
    order_body,
    problem,
    product,
    protected_app,
)
from tests.keys import OTHER_SECRET

POLICY = """
[anonymous]
products = ["read"]

[roles.customer.orders]
actions = ["read", "create", "update", "delete"]
where = { customer = "{sub}" }
hidden = ["total"]
read_only = ["status"]

[roles.customer.customers]
actions = ["read"]
where = { code = "{sub}" }
hidden = ["email"]

[roles.viewer.orders]
actions = ["read"]
where = { status = "open" }

[roles.viewer.customers]
actions = ["read"]
where = { code = "{sub}" }
"""


def bearer(sub: str, *roles: str) -> dict[str, str]:
    claims = {"sub": sub, "roles": list(roles), "exp": int(time.time()) + 300}
    return {"Authorization": f"Bearer {jwt.encode(claims, OTHER_SECRET, algorithm='HS256')}"}


ADA = bearer("ABC123", "customer")
DEE = bearer("DEF456", "customer")


@pytest.fixture
def app(mongodb_uri: str, redis_url: str, tmp_path: Path) -> Iterator[Flask]:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    with protected_app(mongodb_uri, redis_url, RESTENGINE_POLICY=str(policy)) as app:
        yield app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def shop() -> dict[str, Any]:
    """Ada (ABC123) and Dee (DEF456), two orders each; one of each is paid."""
    ada, dee = customer("ABC123", "Ada"), customer("DEF456", "Dee")
    pen = product("Pen", "1.50")
    orders = {
        "ada_open": order(ada, (pen, 1), total="1.50"),
        "ada_paid": order(ada, (pen, 2), status="paid"),
        "dee_open": order(dee, (pen, 3)),
        "dee_paid": order(dee, (pen, 4), status="paid"),
    }
    return {name: str(doc.pk) for name, doc in orders.items()} | {"pen": str(pen.pk)}


def test_item_reads_reach_only_the_callers_documents_and_fields(client: FlaskClient, shop: dict[str, Any]) -> None:
    mine = client.get(f"/api/orders/{shop['ada_open']}", headers=ADA)
    assert mine.status_code == 200 and "total" not in mine.json and mine.json["customer"] == "ABC123"
    problem(client.get(f"/api/orders/{shop['dee_open']}", headers=ADA), 404)
    problem(client.get("/api/customers/DEF456", headers=ADA), 404)
    assert "email" not in client.get("/api/customers/ABC123", headers=ADA).json


def test_lists_counts_cursors_filters_and_sorts_stay_inside_the_rule(client: FlaskClient, shop: dict[str, Any]) -> None:
    listed = client.get("/api/orders?count=exact", headers=ADA)
    assert sorted(item["id"] for item in listed.json["items"]) == sorted([shop["ada_open"], shop["ada_paid"]])
    assert listed.json["count"] == 2 and listed.headers["X-Total-Count"] == "2"
    walked, url = [], "/api/orders?limit=1"
    while url:
        page = client.get(url, headers=ADA).json
        walked += [item["id"] for item in page["items"]]
        url = page["next"] and page["next"].replace("http://localhost", "")
    assert sorted(walked) == sorted([shop["ada_open"], shop["ada_paid"]])
    problem(client.get("/api/orders?total__gte=0", headers=ADA), 400, "total__gte")
    problem(client.get("/api/orders?sort=total", headers=ADA), 400, "sort")
    assert client.get("/api/orders?customer=DEF456", headers=ADA).json["items"] == []


def test_an_expanded_document_the_caller_may_not_read_is_null(client: FlaskClient, shop: dict[str, Any]) -> None:
    viewer = bearer("ABC123", "viewer")
    listed = client.get("/api/orders?expand=customer&sort=id", headers=viewer).json["items"]
    assert sorted(item["id"] for item in listed) == sorted([shop["ada_open"], shop["dee_open"]]), "open orders"
    customers = {item["id"]: item["customer"] for item in listed}
    assert customers[shop["ada_open"]]["id"] == "ABC123"
    assert customers[shop["dee_open"]] is None, "Dee's customer record is not the viewer's to read"


def test_writes_reach_only_the_callers_documents_and_never_move_one_outside(
    client: FlaskClient, shop: dict[str, Any]
) -> None:
    problem(client.patch(f"/api/orders/{shop['dee_open']}", json={"total": "0"}, headers=ADA), 404)
    problem(client.delete(f"/api/orders/{shop['dee_open']}", headers=ADA), 404)
    problem(client.put(f"/api/orders/{shop['dee_open']}", json=order_body(shop["pen"]), headers=ADA), 404)
    problem(client.patch(f"/api/orders/{shop['ada_open']}", json={"status": "shipped"}, headers=ADA), 422)
    problem(client.patch(f"/api/orders/{shop['ada_open']}", json={"total": "0"}, headers=ADA), 422)
    moved = client.patch(f"/api/orders/{shop['ada_open']}", json={"customer": "DEF456"}, headers=ADA)
    problem(moved, 403)
    assert client.get(f"/api/orders/{shop['ada_open']}", headers=ADA).json["customer"] == "ABC123"
    assert client.delete(f"/api/orders/{shop['ada_paid']}", headers=ADA).status_code == 204
    assert client.get(f"/api/orders/{shop['dee_paid']}", headers=DEE).status_code == 200, "Dee's stay"


def test_creates_must_land_inside_the_rule(client: FlaskClient, shop: dict[str, Any]) -> None:
    created = client.post("/api/orders", json=order_body(shop["pen"]), headers=ADA)
    assert created.status_code == 201 and "total" not in created.json
    problem(client.post("/api/orders", json=order_body(shop["pen"], customer="DEF456"), headers=ADA), 403)
    batch = [order_body(shop["pen"]), order_body(shop["pen"], customer="DEF456")]
    problem(client.post("/api/orders", json=batch, headers=ADA), 403)
    assert len(client.get("/api/orders", headers=DEE).json["items"]) == 2, "nothing was written for Dee"


def test_bulk_applies_the_rule_of_each_operation(client: FlaskClient, shop: dict[str, Any]) -> None:
    def bulk(*operations: dict[str, Any]) -> Any:
        return client.post("/api/orders/_bulk", json={"operations": list(operations)}, headers=ADA)

    errors = problem(bulk({"op": "delete", "id": shop["dee_open"]}), 422)["errors"]
    assert errors == {"0": {"id": "no such item"}}, "another caller's document does not exist for Ada"
    outside = bulk({"op": "insert", "document": order_body(shop["pen"], customer="DEF456")})
    assert problem(outside, 422)["errors"] == {"0": {"": "not a document your access rule reaches"}}
    moved = bulk({"op": "update", "id": shop["ada_open"], "patch": {"customer": "DEF456"}})
    assert problem(moved, 422)["errors"] == {"0": {"": "not a document your access rule reaches"}}
    hidden = bulk({"op": "update", "id": shop["ada_open"], "patch": {"total": "0"}})
    assert problem(hidden, 422)["errors"]["0"] == {"total": "unknown or read-only field"}
    done = bulk(
        {"op": "insert", "document": order_body(shop["pen"])},
        {"op": "update", "id": shop["ada_open"], "patch": {"lines": [{"product": shop["pen"], "quantity": 5}]}},
        {"op": "delete", "id": shop["ada_paid"]},
    )
    assert done.status_code == 200, done.get_data(as_text=True)
    assert [result["status"] for result in done.json["results"]] == [201, 200, 204]
    assert client.get(f"/api/orders/{shop['dee_open']}", headers=DEE).status_code == 200, "Dee's stay"
    assert len(client.get("/api/orders", headers=DEE).json["items"]) == 2


def test_the_cache_never_serves_one_callers_entry_to_another(client: FlaskClient, shop: dict[str, Any]) -> None:
    for who, mine in ((ADA, {shop["ada_open"], shop["ada_paid"]}), (DEE, {shop["dee_open"], shop["dee_paid"]})):
        first = client.get("/api/orders", headers=who)
        assert first.headers["X-Cache"] == "miss", "a caller with other rule values has entries of its own"
        again = client.get("/api/orders", headers=who)
        assert again.headers["X-Cache"] == "hit" and {item["id"] for item in again.json["items"]} == mine
        item = client.get(f"/api/orders/{sorted(mine)[0]}", headers=who)
        assert item.status_code == 200
    other = bearer("ABC123", "customer")  # another token, same rules: the same entries
    assert client.get("/api/orders", headers=other).headers["X-Cache"] == "hit"


def test_a_policy_whose_where_cannot_apply_stops_the_start(mongodb_uri: str, tmp_path: Path) -> None:
    from restengine.config import ConfigError

    policy = tmp_path / "policy.toml"
    policy.write_text('[roles.c.orders]\nactions = ["read"]\nwhere = { nowhere = "{sub}" }\n')
    with legacy_registry(), pytest.raises(ConfigError, match=r"roles\.c\.orders\.where\.nowhere"):
        legacy_app(mongodb_uri, RESTENGINE_AUTH="on", RESTENGINE_POLICY=str(policy))
    restengine.db.close_all()
