"""CORS (``RESTENGINE_CORS_ORIGINS``, ``restengine.cors``) on the real app: every answer to an allowed origin
carries what a browser needs — a cached hit answered before Flask and a refused credential included — and a
preflight allows the resource's own methods."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

import restengine
from restengine.config import ConfigError, load_settings
from tests.integration.api_helpers import customer, legacy_app, legacy_registry

SITE = "https://shop.example"
OTHER = "https://evil.example"


@pytest.fixture
def app(mongodb_uri: str, redis_url: str) -> Iterator[Flask]:
    with legacy_registry():
        app = legacy_app(
            mongodb_uri, redis_url, RESTENGINE_CORS_ORIGINS=f"{SITE}, http://127.0.0.1:9", RESTENGINE_AUTH="on"
        )
        try:
            customer("ABC123", "Ada")
            yield app
        finally:
            restengine.db.close_all()


def exposed(headers: object) -> set[str]:
    value = headers.get("Access-Control-Expose-Headers", "")  # type: ignore[attr-defined]
    return {h.strip().lower() for h in value.split(",") if h.strip()}


def test_an_allowed_origin_reads_every_answer_cached_hits_and_refusals_included(app: Flask) -> None:
    client = app.test_client()
    answers = {
        "miss": client.get("/api/customers/ABC123", headers={"Origin": SITE}),
        "hit": client.get("/api/customers/ABC123", headers={"Origin": SITE}),
        "list": client.get("/api/customers?limit=1", headers={"Origin": SITE}),
        "not found": client.get("/api/customers/NOPE", headers={"Origin": SITE}),
        "401": client.post("/api/customers", json={"code": "X"}, headers={"Origin": SITE}),
        "bad key": client.get("/api/customers", headers={"Origin": SITE, "Authorization": "Bearer rek_x_y"}),
    }
    assert answers["hit"].headers["X-Cache"] == "hit", "answered by the cache layer, before Flask"
    assert [(k, r.status_code) for k, r in answers.items()] == [
        ("miss", 200), ("hit", 200), ("list", 200), ("not found", 404), ("401", 401), ("bad key", 401)
    ]  # fmt: skip
    for name, response in answers.items():
        assert response.headers.get("Access-Control-Allow-Origin") == SITE, name
        assert "Origin" in response.headers.get("Vary", ""), name
        assert {"etag", "link", "location", "x-total-count", "retry-after", "x-request-id"} <= exposed(
            response.headers
        ), name
        assert "Access-Control-Allow-Credentials" not in response.headers, "no cookies are ever read"


def test_another_origin_gets_no_permission_and_no_origin_gets_no_cors(app: Flask) -> None:
    client = app.test_client()
    refused = client.get("/api/customers/ABC123", headers={"Origin": OTHER})
    assert refused.status_code == 200, "the server answers; the browser withholds it from the script"
    assert "Access-Control-Allow-Origin" not in refused.headers
    assert "Origin" in refused.headers["Vary"], "a shared cache must not hand it to an allowed site"
    plain = client.get("/api/customers/ABC123")
    assert not [k for k, _ in plain.headers.items() if k.lower().startswith("access-control-")]
    assert "Origin" not in plain.headers.get("Vary", "")


def test_a_preflight_allows_the_resource_s_own_methods(app: Flask) -> None:
    client = app.test_client()
    asked = {"Origin": SITE, "Access-Control-Request-Method": "PATCH",
             "Access-Control-Request-Headers": "authorization, content-type, if-match"}  # fmt: skip
    item = client.options("/api/customers/ABC123", headers=asked)
    assert item.status_code in (200, 204)
    assert item.headers["Access-Control-Allow-Origin"] == SITE
    methods = {m.strip() for m in item.headers["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "PATCH", "PUT", "DELETE"} <= methods and "POST" not in methods, "an item's methods"
    allowed = {h.strip().lower() for h in item.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "if-match"} <= allowed
    assert int(item.headers["Access-Control-Max-Age"]) > 0

    collection = client.options("/api/customers", headers={**asked, "Access-Control-Request-Method": "DELETE"})
    assert collection.headers["Access-Control-Allow-Origin"] == SITE
    assert "Access-Control-Allow-Methods" not in collection.headers, "DELETE is not a method of a collection"
    evil = client.options("/api/customers/ABC123", headers={**asked, "Origin": OTHER})
    assert not [k for k, _ in evil.headers.items() if k.lower().startswith("access-control-")]


def test_any_origin_and_the_setting_s_checks(mongodb_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with legacy_registry():
        app = legacy_app(mongodb_uri, None, RESTENGINE_CORS_ORIGINS="*")
        try:
            customer("ABC123", "Ada")
            response = app.test_client().get("/api/customers/ABC123", headers={"Origin": OTHER})
            assert response.headers["Access-Control-Allow-Origin"] == "*"
            assert "Origin" not in response.headers.get("Vary", ""), "the same answer for every origin"
        finally:
            restengine.db.close_all()
    monkeypatch.setenv("MONGODB_URI", mongodb_uri)
    for bad in ("shop.example", "https://shop.example/path", "*, https://shop.example", "ftp://x", "https://*.x"):
        monkeypatch.setenv("RESTENGINE_CORS_ORIGINS", bad)
        with pytest.raises(ConfigError, match="RESTENGINE_CORS_ORIGINS"):
            load_settings()
