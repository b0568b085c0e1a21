"""What one read may cost (``restengine.api.budget``), on the real app and the real database: counts no index
serves are off unless allowed, a query past its own time limit is the client's 422 (not the database's 503),
and one client's expensive reads cannot take every thread. A frozen database stays a 503: test_faults.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from pymongo.errors import ExecutionTimeout, NetworkTimeout

import restengine
from restengine.api.budget import QueryTooExpensive, Slots, TooManyExpensive, query_time
from restengine.api.registry import EXTENSION, Api
from restengine.ops.processes import free_port
from tests.integration.api_helpers import customer, legacy_app, legacy_registry, problem

QUERY_MS = 10


@pytest.fixture
def serve(mongodb_uri: str) -> Iterator[Any]:
    def make(**config: str) -> Flask:
        return legacy_app(mongodb_uri, None, **config)

    with legacy_registry():
        try:
            yield make
        finally:
            restengine.db.close_all()


def many_customers() -> None:
    """2,500 customers (and Ada, ABC123): enough for a scan to outlast a 10 ms limit on any server."""
    from tests.legacy_models import Customer

    Customer.objects.insert(
        [Customer(code=f"C{n // 1000:02d}{n % 1000:03d}"[:6], name=f"Customer number {n}") for n in range(2500)],
        load_bulk=False,
    )
    customer("ABC123", "Ada")


@pytest.mark.parametrize(
    ("query", "allowed"),
    [
        ("count=exact", True),  # the collection's own count
        ("count=estimated", True),
        ("code=ABC123&count=exact", True),  # the primary key
        ("email=ada@example.com&count=exact", True),  # a unique index
        ("code__gte=B&count=exact", True),  # a range on an index
        ("name=Ada&count=exact", False),  # no index on name
        ("name=Ada&count=estimated", False),  # narrowed: an estimate is an exact count
        ("code__ne=ABC123&count=exact", False),  # an index cannot narrow $ne down
        ("name=Ada", True),  # no count: one page, bounded by the time limit
    ],
)
def test_counts_no_index_serves_are_off_by_default(serve: Any, query: str, allowed: bool) -> None:
    app = serve(RESTENGINE_EXPENSIVE_FILTERS="")
    customer("ABC123", "Ada")
    response = app.test_client().get(f"/api/customers?{query}")
    if allowed:
        assert response.status_code == 200, response.get_data(as_text=True)
    else:
        body = problem(response, 400, "count")
        assert "no index serves these filters" in body["errors"]["count"][0]
        assert "expensive=['count']" in body["errors"]["count"][0]


@pytest.mark.parametrize("allowed", ["customers.count", "customers", "*"])
def test_a_resource_may_allow_them(serve: Any, allowed: str) -> None:
    app = serve(RESTENGINE_EXPENSIVE_FILTERS=allowed)
    customer("ABC123", "Ada")
    response = app.test_client().get("/api/customers?name=Ada&count=exact")
    assert response.status_code == 200 and response.get_json()["count"] == 1


def test_a_query_past_its_own_time_limit_is_the_clients_422_not_a_503(serve: Any) -> None:
    app = serve(RESTENGINE_QUERY_TIME_MS=str(QUERY_MS), RESTENGINE_CACHE_TTL="0")
    many_customers()
    client = app.test_client()
    slow = client.get("/api/customers?name__icontains=zq&count=exact")
    body = problem(slow, 422)
    assert body["type"] == "urn:restengine:problem:query-too-expensive"
    assert body["title"] == "Query too expensive"
    assert f"({QUERY_MS} ms)" in body["detail"]
    assert "Retry-After" not in slow.headers, "asking again will not help: asking for less will"
    # Cheap reads under the same limit are fine: the limit is the query's, not the service's.
    assert client.get("/api/customers/ABC123").status_code == 200
    assert client.get("/api/customers?code=ABC123").status_code == 200


def test_the_limit_stays_below_the_request_deadline(serve: Any) -> None:
    # A third of the deadline is left to tell a slow query from an unreachable database.
    assert _api(serve(RESTENGINE_QUERY_TIME_MS="5000", RESTENGINE_DB_TIMEOUT_MS="900")).query_time == 0.6
    assert _api(serve(RESTENGINE_QUERY_TIME_MS="250")).query_time == 0.25


def test_one_client_cannot_run_more_than_its_share_of_expensive_reads() -> None:
    slots = Slots(per_caller=2, total=3)
    release = threading.Event()

    def hold(caller: str) -> threading.Thread:
        def run() -> None:
            with slots.hold(caller):
                release.wait(10)

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    def running(n: int) -> None:
        deadline = time.monotonic() + 5
        while slots.snapshot()["running"] != n:
            assert time.monotonic() < deadline, slots.snapshot()
            time.sleep(0.001)

    held = [hold("key:a"), hold("key:a")]
    running(2)
    with pytest.raises(TooManyExpensive, match="You already run 2 expensive queries") as refused:
        slots.hold("key:a").__enter__()
    assert refused.value.status == 429
    held.append(hold("key:b"))  # another caller has its own share ...
    running(3)
    with pytest.raises(TooManyExpensive, match="as many expensive queries as it can"):  # ... up to the total
        slots.hold("key:c").__enter__()
    release.set()
    for thread in held:
        thread.join(5)
    assert slots.snapshot() == {"running": 0, "callers": {}}, "every slot is given back"
    with slots.hold("key:a"), slots.hold("key:a"):
        pass


def test_an_expensive_read_over_the_cap_is_a_429_through_the_app(serve: Any) -> None:
    app = serve(RESTENGINE_EXPENSIVE_CONCURRENCY="1", RESTENGINE_CACHE_TTL="0")
    customer("ABC123", "Ada")
    slots = _api(app).slots
    with slots.hold("addr:127.0.0.1"):  # this client already runs one
        refused = app.test_client().get("/api/customers?name__icontains=number")
        cheap = app.test_client().get("/api/customers?code=ABC123")
        other = app.test_client().get("/api/customers?name__icontains=number", environ_base={"REMOTE_ADDR": "10.1.1.1"})
    body = problem(refused, 429)
    assert body["type"] == "urn:restengine:problem:too-many-expensive-queries"
    assert refused.headers["Retry-After"] == "1"
    assert cheap.status_code == 200, "cheap reads are never held back"
    assert other.status_code == 200, "another client has its own share"


def _api(app: Flask) -> Api:
    found = app.extensions[EXTENSION]
    assert isinstance(found, Api)
    return found


@pytest.mark.parametrize(
    "error",
    [
        ExecutionTimeout("operation exceeded time limit", 50, {"ok": 0, "code": 50}),
        NetworkTimeout("timed out"),  # no answer in time, and the database answers a ping: the query's fault
    ],
)
def test_an_expensive_query_out_of_its_own_time_is_the_clients_problem(serve: Any, error: Exception) -> None:
    serve()
    with pytest.raises(QueryTooExpensive), query_time(0.2, time.monotonic() + 1.0):
        raise error
    # Past the request's own deadline, it is the database's: 503.
    with pytest.raises(type(error)), query_time(0.2, time.monotonic() - 0.1):
        raise error


def test_an_index_less_equality_filter_is_expensive_too(serve: Any) -> None:
    app = serve(RESTENGINE_EXPENSIVE_CONCURRENCY="1", RESTENGINE_CACHE_TTL="0")
    customer("ABC123", "Ada")
    with _api(app).slots.hold("addr:127.0.0.1"):
        assert app.test_client().get("/api/customers?name=Ada").status_code == 429  # a scan: no index on name
        assert app.test_client().get("/api/customers?email=ada@example.com").status_code == 200  # indexed


def test_a_callers_share_counts_across_every_worker_through_redis(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.delete("re:xq:key:a", "re:xq:key:b")
    first, second = (Slots(per_caller=1, total=4, shared=lambda: client, lease=5) for _ in range(2))  # two workers
    with first.hold("key:a"):
        with pytest.raises(TooManyExpensive, match="You already run 1 expensive queries"):
            second.hold("key:a").__enter__()
        with second.hold("key:b"):  # another caller has its own share
            assert client.zcard("re:xq:key:b") == 1
    assert client.zcard("re:xq:key:a") == 0 and client.zcard("re:xq:key:b") == 0, "every lease is given back"
    with second.hold("key:a"):
        pass
    # A worker that died holding a lease holds it until the lease ends, no longer.
    dead = Slots(per_caller=1, total=4, shared=lambda: client, lease=0.2)
    dead._lease("key:a")
    with pytest.raises(TooManyExpensive):
        first.hold("key:a").__enter__()
    time.sleep(0.3)
    with first.hold("key:a"):
        pass
    client.close()


def test_without_redis_the_caps_are_per_process(caplog: pytest.LogCaptureFixture) -> None:
    gone = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2)
    slots = Slots(per_caller=1, total=4, shared=lambda: gone)
    with caplog.at_level("WARNING"), slots.hold("key:a"), pytest.raises(TooManyExpensive):
        slots.hold("key:a").__enter__()  # the per-process cap still holds
    assert caplog.text.count("capped per process only") == 1
    gone.close()
