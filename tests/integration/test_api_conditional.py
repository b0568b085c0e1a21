"""ETags and conditional requests: 304 on reads, 412 on stale writes, one winner under contention."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.integration.api_helpers import MERGE_PATCH, customer, ok, problem, raw, shop, strong_etag
from tests.legacy_models import Customer


@pytest.mark.parametrize("path", ["/api/customers/ABC123", "/api/customers", "/api/orders?sort=-placed&limit=5"])
def test_if_none_match_with_the_current_etag_is_304(client: FlaskClient, path: str) -> None:
    shop()
    etag = strong_etag(client.get(path))
    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b""
    assert again.headers.get("ETag") == etag


def test_list_etag_changes_after_a_write(client: FlaskClient) -> None:
    shop()
    etag = strong_etag(client.get("/api/customers"))
    ok(client.post("/api/customers", json={"code": "NEW001", "name": "Nia", "email": "nia@example.com"}), 201)
    after = client.get("/api/customers", headers={"If-None-Match": etag})
    assert after.status_code == 200 and strong_etag(after) != etag
    assert len(ok(after)["items"]) == 2


def test_etags_follow_writes_made_outside_the_api(app: Flask, client: FlaskClient) -> None:
    # Uncached: what a cached read sees of writes that bypass the API is the
    # watcher's and the TTL's business (tests/integration/test_cache*.py).
    app.extensions["restengine.api"].register(Customer, cache_ttl=0)
    shop()
    item, listing = strong_etag(client.get("/api/customers/ABC123")), strong_etag(client.get("/api/customers"))
    Customer.objects(code="ABC123").update(set__name="Renamed by the legacy app")
    assert client.get("/api/customers/ABC123", headers={"If-None-Match": item}).status_code == 200
    assert client.get("/api/customers", headers={"If-None-Match": listing}).status_code == 200


def test_item_etag_changes_after_patch(client: FlaskClient) -> None:
    shop()
    etag = strong_etag(client.get("/api/customers/ABC123"))
    response = client.patch("/api/customers/ABC123", json={"name": "Ada B"})
    assert strong_etag(response) != etag
    assert strong_etag(client.get("/api/customers/ABC123")) == strong_etag(response)


def _write(client: FlaskClient, method: str, etag: str) -> TestResponse:
    headers = {"If-Match": etag}
    if method == "PUT":
        body = {"name": "Put", "email": "put@example.com"}
        return client.put("/api/customers/DEF456", json=body, headers=headers)
    if method == "PATCH":
        return client.patch(
            "/api/customers/DEF456", data='{"name": "Patched"}', content_type=MERGE_PATCH, headers=headers
        )
    return client.delete("/api/customers/DEF456", headers=headers)


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_if_match_with_a_stale_etag_is_412_and_changes_nothing(client: FlaskClient, method: str) -> None:
    customer("DEF456", "Dee")
    stale = strong_etag(client.get("/api/customers/DEF456"))
    Customer.objects(code="DEF456").update(set__name="Changed meanwhile")
    before = raw("customers", "DEF456")
    problem(_write(client, method, stale), 412)
    assert raw("customers", "DEF456") == before


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_if_match_with_the_current_etag_succeeds(client: FlaskClient, method: str) -> None:
    customer("DEF456", "Dee")
    current = strong_etag(client.get("/api/customers/DEF456"))
    response = _write(client, method, current)
    assert response.status_code == (204 if method == "DELETE" else 200), response.get_data(as_text=True)


def test_if_match_with_a_made_up_etag_is_412(client: FlaskClient) -> None:
    customer("DEF456", "Dee")
    problem(_write(client, "PATCH", '"made-up"'), 412)
    assert Customer.objects.get(code="DEF456").name == "Dee"


def test_concurrent_patches_with_one_etag_have_exactly_one_winner(app: Flask, client: FlaskClient) -> None:
    shop()
    etag = strong_etag(client.get("/api/customers/ABC123"))
    before = raw("customers", "ABC123")
    start = threading.Barrier(20, timeout=30)

    def attempt(i: int) -> tuple[int, Any]:
        own = app.test_client()
        start.wait()
        response = own.patch(
            "/api/customers/ABC123",
            data=json.dumps({"name": f"Writer {i}"}),
            content_type=MERGE_PATCH,
            headers={"If-Match": etag},
        )
        return response.status_code, response.get_json()

    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(attempt, range(20), timeout=120))
    statuses = [status for status, _ in outcomes]
    assert sorted(statuses) == [200] + [412] * 19, statuses
    winner = statuses.index(200)
    after = raw("customers", "ABC123")
    assert after["name"] == f"Writer {winner}"
    assert set(after) == set(before), "no version or lock field added to a legacy document"
    assert {k: v for k, v in after.items() if k != "name"} == {k: v for k, v in before.items() if k != "name"}
