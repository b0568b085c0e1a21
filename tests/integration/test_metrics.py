"""Prometheus metrics (``restengine.metrics``) through the real app on the real database: request durations by
route template and status (never a raw path), refusals, cache answers, who may scrape. Across gunicorn
workers: tests/e2e/test_metrics_gunicorn.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from prometheus_client import REGISTRY

import restengine.db
from restengine import metrics
from tests.integration.api_helpers import customer, legacy_app, legacy_registry, legacy_served, problem


@pytest.fixture
def app(mongodb_uri: str, redis_url: str) -> Iterator[Flask]:
    with legacy_served(mongodb_uri, redis_url) as app:
        yield app


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def requests(route: str, status: str, method: str = "GET") -> float:
    return sample("http_server_request_duration_seconds_count", method=method, route=route, status=status)


def test_requests_are_counted_by_route_template_and_status(app: Flask) -> None:
    client = app.test_client()
    item, listing = "/api/customers/{id}", "/api/customers"
    metrics.flush()  # what earlier apps in this process counted is written before the baseline is read
    before = {
        "item 200": requests(item, "200"),
        "item 404": requests(item, "404"),
        "list 200": requests(listing, "200"),
        "unmatched": requests("unmatched", "404"),
        "health": requests("/healthz", "200"),
        "hit": sample("restengine_cache_answers_total", result="hit"),
    }
    for _ in range(3):
        assert client.get("/api/customers/ABC123").status_code == 200
    assert client.get("/api/customers/NOP999").status_code == 404
    assert client.get("/api/customers?limit=1").status_code == 200
    for n in range(4):  # random paths: one series, not four
        assert client.get(f"/no/such/path/{n}").status_code == 404
    assert client.get("/healthz").status_code == 200
    metrics.flush()  # the cache's answers are written every quarter second, or now
    assert requests(item, "200") - before["item 200"] == 3
    assert requests(item, "404") - before["item 404"] == 1
    assert requests(listing, "200") - before["list 200"] == 1
    assert requests("unmatched", "404") - before["unmatched"] == 4
    assert requests("/healthz", "200") - before["health"] == 1
    assert sample("restengine_cache_answers_total", result="hit") - before["hit"] == 2, "the 2nd and 3rd GET"
    assert sample("mongodb_command_duration_seconds_count", command="find", outcome="success") > 0


def test_only_allowed_addresses_scrape_and_nothing_is_cached(app: Flask) -> None:
    client = app.test_client()
    client.get("/api/customers/ABC123")
    scraped = client.get("/metrics")  # the test client's address: 127.0.0.1
    assert scraped.status_code == 200
    assert scraped.headers["Cache-Control"] == "no-store"
    assert scraped.content_type.startswith("text/plain")
    text = scraped.get_data(as_text=True)
    assert 'http_server_request_duration_seconds_count{method="GET",route="/api/customers/{id}",status="200"}' in text
    assert "mongodb_pool_checkout_wait_seconds_count" in text
    refused = client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.7"})
    body = problem(refused, 403)
    assert "monitoring" in body["detail"]


def test_a_role_the_policy_lets_read_metrics_scrapes_from_anywhere(
    mongodb_uri: str, redis_url: str, tmp_path: Path
) -> None:
    import time

    import jwt

    from tests.keys import OTHER_SECRET

    policy = tmp_path / "policy.toml"
    policy.write_text('[anonymous]\n"*" = ["read"]\n\n[roles.prometheus]\nmetrics = ["read"]\n')
    with legacy_registry():
        app = legacy_app(
            mongodb_uri,
            redis_url,
            RESTENGINE_AUTH="on",
            RESTENGINE_POLICY=str(policy),
            RESTENGINE_JWT_SECRET=OTHER_SECRET,
        )
        try:
            far = {"REMOTE_ADDR": "203.0.113.7"}
            claims = {"sub": "scraper", "roles": ["prometheus"], "exp": int(time.time()) + 60}
            scraper = {"Authorization": "Bearer " + jwt.encode(claims, OTHER_SECRET, "HS256")}
            other = {"Authorization": "Bearer " + jwt.encode({**claims, "roles": ["x"]}, OTHER_SECRET, "HS256")}
            client = app.test_client()
            assert client.get("/metrics", headers=scraper, environ_base=far).status_code == 200
            assert client.get("/metrics", headers=other, environ_base=far).status_code == 403
            assert client.get("/metrics", environ_base=far).status_code == 403
        finally:
            restengine.db.close_all()


def test_refusals_are_counted_by_reason(mongodb_uri: str, redis_url: str) -> None:
    with legacy_registry():
        app = legacy_app(mongodb_uri, redis_url, RESTENGINE_RATE_LIMIT="1/minute", RESTENGINE_AUTH="on")
        try:
            customer("ABC123", "Ada")
            client = app.test_client()
            before = sample("restengine_refused_requests_total", reason="rate_limited")
            auth = sample("restengine_auth_failures_total", kind="401")
            address = {"REMOTE_ADDR": "198.51.100.4"}
            assert client.get("/api/customers/ABC123", environ_base=address).status_code == 200
            assert client.get("/api/customers/ABC123", environ_base=address).status_code == 429
            bad = {"Authorization": "Bearer rek_nope_nope"}
            assert client.get("/api/customers/ABC123", headers=bad).status_code == 401
        finally:
            restengine.db.close_all()
    assert sample("restengine_refused_requests_total", reason="rate_limited") - before == 1
    assert sample("restengine_auth_failures_total", kind="401") - auth == 1


def test_metrics_off_measures_and_serves_nothing(mongodb_uri: str) -> None:
    with legacy_registry():
        app = legacy_app(mongodb_uri, None, RESTENGINE_METRICS="off")
        try:
            assert app.test_client().get("/metrics").status_code == 404
            assert not any(type(layer).__name__ == "Requests" for layer in _layers(app))
        finally:
            restengine.db.close_all()


def _layers(app: Flask) -> list[object]:
    found, layer = [], app.wsgi_app
    while layer is not None and len(found) < 20:
        found.append(layer)
        layer = getattr(layer, "wsgi_app", None) or getattr(layer, "app", None)
    return found


def timings(response: object) -> dict[str, float]:
    field = response.headers["Server-Timing"]  # type: ignore[attr-defined]
    found = {}
    for part in field.split(","):
        name, _, duration = part.strip().partition(";dur=")
        found[name] = float(duration)
    return found


def test_server_timing_says_where_the_time_went(app: Flask) -> None:
    client = app.test_client()
    miss = timings(client.get("/api/customers/ABC123"))
    assert set(miss) == {"cache", "db", "app"}
    assert miss["db"] > 0, "a miss reads the database"
    assert miss["app"] >= miss["db"] + miss["cache"] - 0.01
    hit = client.get("/api/customers/ABC123")
    assert hit.headers["X-Cache"] == "hit"
    assert timings(hit)["db"] == 0.0, "a cached answer reads nothing"
    assert "Server-Timing" in client.get("/api/customers/NOP999").headers, "errors are timed too"
    assert "Server-Timing" not in client.get("/healthz").headers, "only the API's answers"


def test_server_timing_off_keeps_timings_private(mongodb_uri: str) -> None:
    with legacy_registry():
        app = legacy_app(mongodb_uri, None, RESTENGINE_SERVER_TIMING="off")
        try:
            customer("ABC123", "Ada")
            assert "Server-Timing" not in app.test_client().get("/api/customers/ABC123").headers
        finally:
            restengine.db.close_all()


def test_cache_invalidations_and_the_breaker_are_measured(app: Flask, mongodb_uri: str) -> None:
    from tests.integration.api_helpers import patch

    sent = sample("restengine_cache_invalidations_total", result="sent")
    assert patch(app.test_client(), "/api/customers/ABC123", {"name": "Ada L."}).status_code == 200
    assert sample("restengine_cache_invalidations_total", result="sent") > sent, "the write's bump reached Redis"

    from restengine.ops.processes import free_port

    with legacy_registry():
        gone = legacy_app(mongodb_uri, f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
        try:
            client = gone.test_client()
            for _ in range(4):
                assert client.get("/api/customers/ABC123").status_code == 200  # served from the database
            assert sample("restengine_cache_breaker_open") == 1.0
        finally:
            restengine.db.close_all()


def test_made_up_methods_add_no_series(app: Flask) -> None:
    client = app.test_client()
    before = requests("/api/customers/{id}", "405", method="_OTHER")
    for method in ("FOO", "BAR", "XYZZY"):
        assert client.open("/api/customers/ABC123", method=method).status_code == 405
    assert requests("/api/customers/{id}", "405", method="_OTHER") - before == 3
    text = client.get("/metrics").get_data(as_text=True)
    assert 'method="FOO"' not in text and 'method="XYZZY"' not in text
