"""Rate limits (``restengine.ratelimit``) on the real app, the real database and a real Redis: who is counted,
against which budget, what a client is told, and what happens when Redis is gone. Two gunicorn instances behind
nginx sharing one budget: tests/e2e/test_rate_limits_stack.py."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import redis
from flask import Flask

import restengine.db
from restengine import ratelimit
from restengine.auth.keys import COLLECTION, KeyStore
from restengine.config import ConfigError, load_settings
from restengine.ops.processes import free_port
from tests.integration.api_helpers import customer, legacy_app, legacy_registry, new_customer, problem
from tests.keys import OTHER_SECRET

POLICY = """
[anonymous]
customers = ["read"]

[roles.clerk]
"*" = { actions = ["read", "create"], rate_limit = "8/minute" }

[roles.partner.customers]
actions = ["read"]
rate_limit = "3/minute"

[roles.service]
"*" = { actions = ["read"], rate_limit = "off" }
"""

ITEM = "/api/customers/ABC123"


@pytest.fixture(autouse=True)
def _fresh_counts(redis_url: str) -> Iterator[None]:
    with redis.Redis.from_url(redis_url) as client:
        client.flushall()
    yield


def make(mongodb_uri: str, redis_url: str | None, **config: Any) -> Flask:
    settings = {
        "RESTENGINE_RATE_LIMIT": "5/minute",
        "RESTENGINE_WRITE_RATE_LIMIT": "2/minute",
        "RESTENGINE_AUTH": "on",
        "RESTENGINE_JWT_SECRET": OTHER_SECRET,
        **config,
    }
    return legacy_app(mongodb_uri, redis_url, **settings)


@pytest.fixture
def app(mongodb_uri: str, redis_url: str, tmp_path: Path) -> Iterator[Flask]:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    with legacy_registry():
        app = make(mongodb_uri, redis_url, RESTENGINE_POLICY=str(policy))
        try:
            customer("ABC123", "Ada")
            yield app
        finally:
            restengine.db.close_all()


def token(sub: str, *roles: str) -> dict[str, str]:
    payload = {"sub": sub, "roles": list(roles), "exp": int(time.time()) + 300}
    return {"Authorization": f"Bearer {jwt.encode(payload, OTHER_SECRET, algorithm='HS256')}"}


def fields(response: Any) -> tuple[str, str]:
    return response.headers.get("RateLimit-Policy"), response.headers.get("RateLimit")


def remaining(response: Any) -> int:
    found = re.fullmatch(r'"[\w.]+";r=(\d+);t=(\d+)', response.headers["RateLimit"])
    assert found, response.headers["RateLimit"]
    return int(found.group(1))


def test_a_client_gets_its_budget_then_429_with_the_fields_of_the_draft(app: Flask) -> None:
    client = app.test_client()
    answers = [client.get(ITEM) for _ in range(7)]
    assert [a.status_code for a in answers] == [200] * 5 + [429] * 2
    assert answers[1].headers["X-Cache"] == "hit", "a hit of the cache's fast path is counted like any answer"
    assert [remaining(a) for a in answers] == [4, 3, 2, 1, 0, 0, 0]
    policy_field, field = fields(answers[0])
    assert policy_field == '"read";q=5;w=60'
    assert re.fullmatch(r'"read";r=4;t=(60|59)', field)
    body = problem(answers[5], 429)
    assert body["type"] == "urn:restengine:problem:rate-limited"
    assert body["title"] == "Too many requests"
    assert "5 per 1 minute" in body["detail"]
    retry = int(answers[5].headers["Retry-After"])
    assert 1 <= retry <= 60
    assert answers[5].headers["X-Request-ID"], "a refusal carries the request id too"
    assert answers[5].headers["RateLimit-Policy"] == '"read";q=5;w=60'


def test_writes_have_their_own_smaller_budget(app: Flask) -> None:
    client = app.test_client()
    clerk = token("c1", "clerk")
    # A clerk's "*" rule sets reads to 8/minute; writes keep RESTENGINE_WRITE_RATE_LIMIT (2/minute).
    posts = [
        client.post("/api/customers", json=new_customer(code=f"WWW00{i}", email=f"w{i}@example.com"), headers=clerk)
        for i in range(3)
    ]
    assert [p.status_code for p in posts] == [201, 201, 429]
    assert fields(posts[0])[0] == '"write";q=2;w=60'
    assert client.get(ITEM, headers=clerk).status_code == 200, "reads are counted apart"
    assert fields(client.get(ITEM, headers=clerk))[0] == '"read";q=8;w=60'
    assert (
        restengine.db.get_database()["customers"].count_documents({"_id": {"$in": ["WWW000", "WWW001", "WWW002"]}}) == 2
    )


def test_each_principal_and_each_anonymous_address_has_its_own_budget(app: Flask) -> None:
    client = app.test_client()
    for _ in range(5):
        assert client.get(ITEM, environ_base={"REMOTE_ADDR": "10.0.0.1"}).status_code == 200
    assert client.get(ITEM, environ_base={"REMOTE_ADDR": "10.0.0.1"}).status_code == 429
    assert client.get(ITEM, environ_base={"REMOTE_ADDR": "10.0.0.2"}).status_code == 200, "another address"
    # Signed in, the same address spends the caller's own budget (the clerk's 8/minute) ...
    for sub in ("c1", "c2"):
        answers = [
            client.get(ITEM, headers=token(sub, "clerk"), environ_base={"REMOTE_ADDR": "10.0.0.1"}) for _ in range(9)
        ]
        assert [a.status_code for a in answers] == [200] * 8 + [429], sub
    # ... and credentials that are not valid are counted against the address, then refused.
    bad = client.get(ITEM, headers={"Authorization": "Bearer rek_nope_nope"}, environ_base={"REMOTE_ADDR": "10.0.0.1"})
    assert bad.status_code == 429
    bad = client.get(ITEM, headers={"Authorization": "Bearer rek_nope_nope"}, environ_base={"REMOTE_ADDR": "10.0.0.3"})
    assert bad.status_code == 401 and remaining(bad) == 4


def test_an_api_key_is_counted_as_itself(app: Flask) -> None:
    client = app.test_client()
    store = KeyStore(lambda: restengine.db.get_database()[COLLECTION])
    first, second = store.create("clerk")[1], store.create("clerk")[1]
    for credential in (first, second):
        answers = [client.get(ITEM, headers={"Authorization": f"Bearer {credential}"}) for _ in range(9)]
        assert [a.status_code for a in answers] == [200] * 8 + [429]


def test_the_policy_sets_a_resource_apart_and_can_lift_the_limit(app: Flask) -> None:
    client = app.test_client()
    partner = token("p1", "partner")
    answers = [client.get(ITEM, headers=partner) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert fields(answers[0])[0] == '"customers.read";q=3;w=60'
    # Its other reads are not counted against customers' limit: the default applies there.
    assert fields(client.get("/api/products", headers=partner))[0] == '"read";q=5;w=60'
    both = token("p2", "partner", "clerk")  # the most generous of its roles: the clerk's 8, for every resource
    assert fields(client.get(ITEM, headers=both))[0] == '"read";q=8;w=60'
    service = token("s1", "service")
    answers = [client.get(ITEM, headers=service) for _ in range(12)]
    assert {a.status_code for a in answers} == {200}
    assert fields(answers[0]) == (None, None), "no limit, no fields"


def test_what_is_not_a_resource_is_not_limited(app: Flask) -> None:
    client = app.test_client()
    for _ in range(6):
        client.get(ITEM)
    assert client.get(ITEM).status_code == 429
    for path in ("/healthz", "/readyz", "/api/", "/openapi.json", "/"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "RateLimit" not in response.headers, path


def test_without_redis_each_process_counts_for_itself(mongodb_uri: str, caplog: pytest.LogCaptureFixture) -> None:
    with legacy_registry(), caplog.at_level(logging.WARNING):
        app = make(mongodb_uri, None, RESTENGINE_AUTH="off")
        try:
            customer("ABC123", "Ada")
            client = app.test_client()
            assert [client.get(ITEM).status_code for _ in range(6)] == [200] * 5 + [429]
        finally:
            restengine.db.close_all()
    assert "rate limits are counted by each worker process on its own" in caplog.text


def test_when_redis_is_unreachable_the_limiter_fails_open_and_says_so(
    mongodb_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    gone = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    with legacy_registry(), caplog.at_level(logging.WARNING):
        app = make(mongodb_uri, gone, RESTENGINE_AUTH="off", RESTENGINE_CACHE_TTL="0")
        try:
            customer("ABC123", "Ada")
            client = app.test_client()
            answers = [client.get(ITEM) for _ in range(10)]
        finally:
            restengine.db.close_all()
    assert [a.status_code for a in answers] == [200] * 10
    assert all("RateLimit" not in a.headers for a in answers)
    limiter = app.extensions[ratelimit.EXTENSION]
    assert limiter.failed_open == 10
    assert caplog.text.count("rate limits are not enforced") == 1, "once per outage, not once per request"


def test_counting_resumes_when_redis_answers_again(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    storage, shared = ratelimit.storage_for(load_settings({"REDIS_URL": redis_url}))
    assert shared
    limiter = ratelimit.Limiter(storage, read="2/minute", write=None)
    quota = limiter.defaults[False]
    real = storage.incr

    def down(*args: Any, **kwargs: Any) -> int:
        raise redis.ConnectionError("refused")

    monkeypatch.setattr(storage, "incr", down)
    assert limiter.hit(quota, "addr:x") is None and limiter.failed_open == 1
    monkeypatch.setattr(storage, "incr", real)
    assert limiter.hit(quota, "addr:x") is None, "not tried again at once: an outage adds no latency"
    monkeypatch.setattr(ratelimit, "RETRY_SECONDS", 0.0)
    limiter._down_until = time.monotonic() - 1
    verdicts = [limiter.hit(quota, "addr:x") for _ in range(3)]
    assert [v.allowed for v in verdicts if v is not None] == [True, True, False]


@pytest.mark.parametrize("value", ["lots", "0/minute", "5/minute;10/hour", "5/fortnight"])
def test_a_rate_that_cannot_be_read_is_refused_at_start_up(value: str, mongodb_uri: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="RESTENGINE_RATE_LIMIT: expected a rate such as 600/minute"):
        load_settings({"RESTENGINE_RATE_LIMIT": value})
    policy = tmp_path / "policy.toml"
    policy.write_text(f'[roles.x]\n"*" = {{ actions = ["read"], rate_limit = "{value}" }}\n')
    with legacy_registry(), pytest.raises(ConfigError, match=r"RESTENGINE_POLICY: roles\.x\.\*\.rate_limit"):
        make(mongodb_uri, None, RESTENGINE_POLICY=str(policy))


def test_expensive_reads_have_a_budget_of_their_own(mongodb_uri: str, redis_url: str) -> None:
    with legacy_registry():
        app = make(
            mongodb_uri,
            redis_url,
            RESTENGINE_AUTH="off",
            RESTENGINE_EXPENSIVE_RATE_LIMIT="2/minute",
            RESTENGINE_RATE_LIMIT="100/minute",
            RESTENGINE_CACHE_TTL="0",
        )
        try:
            customer("ABC123", "Ada")
            client = app.test_client()
            scans = [client.get(f"/api/customers?name__icontains=a{n}") for n in range(3)]
            cheap = client.get("/api/customers?code=ABC123")
        finally:
            restengine.db.close_all()
    assert [s.status_code for s in scans] == [200, 200, 429]
    body = problem(scans[2], 429)
    assert body["type"] == "urn:restengine:problem:rate-limited"
    assert "Too many expensive queries" in body["detail"] and "2 per 1 minute" in body["detail"]
    assert 1 <= int(scans[2].headers["Retry-After"]) <= 60
    assert '"expensive";q=2;w=60' in scans[2].headers.getlist("RateLimit-Policy")
    assert cheap.status_code == 200, "reads an index serves are not counted against it"


def evals(client: redis.Redis) -> int:
    """Scripts Redis ran so far (every count the limiter sends is one)."""
    return sum(int(v["calls"]) for k, v in client.info("commandstats").items() if k.startswith("cmdstat_eval"))


def wait_until(predicate: Any, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_far_from_its_limit_a_caller_is_counted_ahead_and_nothing_is_lost(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    storage, _ = ratelimit.storage_for(load_settings({"REDIS_URL": redis_url}))
    limiter = ratelimit.Limiter(storage, read="100000/minute", write=None)
    quota = limiter.defaults[False]
    before = evals(client)
    verdicts = [limiter.hit(quota, "addr:busy") for _ in range(2000)]
    assert all(v is not None and v.allowed for v in verdicts)
    assert verdicts[-1] is not None and verdicts[-1].remaining <= 100000 - 2000 + 50
    key = quota.rate.key_for("read", "addr:busy")  # type: ignore[union-attr]
    wait_until(lambda: int(client.get(f"{ratelimit.KEY_PREFIX}:{key}") or 0) == 2000)
    sent = evals(client) - before
    assert sent < 2000 / 5, f"{sent} round trips for 2000 requests: they are sent together"
    client.close()


def test_near_its_limit_every_request_waits_for_the_shared_count(redis_url: str) -> None:
    # Two workers share a caller's 200 a minute: far from it they count ahead, from halfway each request asks
    # Redis; in all, the limit lets through 200 and not one more.
    storage_a, _ = ratelimit.storage_for(load_settings({"REDIS_URL": redis_url}))
    storage_b, _ = ratelimit.storage_for(load_settings({"REDIS_URL": redis_url}))
    workers = [ratelimit.Limiter(s, read="200/minute", write=None) for s in (storage_a, storage_b)]
    allowed = 0
    for n in range(300):
        limiter = workers[n % 2]
        verdict = limiter.hit(limiter.defaults[False], "addr:edge")
        assert verdict is not None
        allowed += verdict.allowed
    assert allowed == 200


def test_counts_of_one_process_reach_redis_when_it_is_back(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    storage, _ = ratelimit.storage_for(load_settings({"REDIS_URL": redis_url}))
    limiter = ratelimit.Limiter(storage, read="100000/minute", write=None)
    quota = limiter.defaults[False]
    assert limiter.hit(quota, "addr:gap") is not None  # the window is known: what follows is counted ahead
    real = storage.incr

    def down(*args: Any, **kwargs: Any) -> int:
        raise redis.ConnectionError("refused")

    monkeypatch.setattr(storage, "incr", down)
    for _ in range(10):
        limiter.hit(quota, "addr:gap")
    wait_until(lambda: limiter.failed_open > 0 or limiter._down_until > 0)
    monkeypatch.setattr(storage, "incr", real)
    # Failing open: what could not be sent is lost (counted low, never high), and requests go on.
    assert all(limiter.hit(quota, "addr:gap") is None for _ in range(3))
