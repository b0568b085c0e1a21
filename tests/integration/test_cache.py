"""The shared response cache against a real redis-server and the real database server."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from mongoengine import CASCADE, Document, ReferenceField, StringField, signals

import restengine
from restengine.documents import load_documents
from restengine.ops.indexes import create_indexes
from tests.conftest import RedisServer
from tests.integration.api_helpers import COMMANDS, customer, database_name, legacy_app, legacy_registry, product, shop
from tests.legacy_models import Circle, Customer, Order, Product


@pytest.fixture
def app(mongodb_uri: str, redis_url: str) -> Iterator[Flask]:
    with legacy_registry():
        app = legacy_app(mongodb_uri, redis_url)
        create_indexes(load_documents(["tests.legacy_models"]))
        try:
            yield app
        finally:
            restengine.db.close_all()


def cached(client: FlaskClient, url: str, **kwargs: Any) -> tuple[str, Any]:
    response = client.get(url, **kwargs)
    assert response.status_code in (200, 304), response.get_data(as_text=True)
    return response.headers.get("X-Cache", ""), response.get_json(silent=True)


def test_second_read_is_a_hit_with_the_same_etag(client: FlaskClient) -> None:
    shop()
    first = client.get("/api/customers/ABC123")
    second = client.get("/api/customers/ABC123")
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("miss", "hit")
    assert first.get_data() == second.get_data() and first.headers["ETag"] == second.headers["ETag"]
    assert second.headers["Cache-Control"] == "no-cache"
    revalidated = client.get("/api/customers/ABC123", headers={"If-None-Match": second.headers["ETag"]})
    assert revalidated.status_code == 304 and revalidated.headers["X-Cache"] == "hit"
    assert cached(client, "/api/customers?sort=name")[0] == "miss"
    assert cached(client, "/api/customers?sort=name")[0] == "hit"


def test_query_order_does_not_split_the_cache(client: FlaskClient) -> None:
    shop()
    assert cached(client, "/api/customers?sort=name&limit=5")[0] == "miss"
    assert cached(client, "/api/customers?limit=5&sort=name")[0] == "hit"


def test_a_repeated_parameter_keeps_its_order_in_the_key(client: FlaskClient) -> None:
    for i in range(3):
        customer(f"CUS{i:03d}", f"C {2 - i}", email=f"{i}@example.com")
    one = cached(client, "/api/customers?sort=name&sort=email")
    two = cached(client, "/api/customers?sort=email&sort=name")
    assert (one[0], two[0]) == ("miss", "miss"), "every value counts, in order: these are different requests"
    assert [i["id"] for i in one[1]["items"]] == ["CUS002", "CUS001", "CUS000"]
    assert [i["id"] for i in two[1]["items"]] == ["CUS000", "CUS001", "CUS002"]


def test_every_value_of_a_repeated_parameter_is_in_the_key(client: FlaskClient) -> None:
    shop()
    for url in ("/api/customers/ABC123", "/api/customers"):
        assert cached(client, f"{url}?fields=name")[0] == "miss"
        assert cached(client, f"{url}?fields=name")[0] == "hit"
        status, body = cached(client, f"{url}?fields=name&fields=email")
        assert status == "miss", "not the cached body of ?fields=name"
        item = body["items"][0] if "items" in body else body
        assert set(item) == {"id", "name", "email"}, item
        assert cached(client, f"{url}?fields=name&fields=email")[0] == "hit"
        assert cached(client, f"{url}?fields=email&fields=name")[0] == "miss", "another spelling: a miss"
    assert client.get("/api/customers?limit=1").status_code == 200
    repeated = client.get("/api/customers?limit=1&limit=1")
    assert repeated.status_code == 400 and "X-Cache" not in repeated.headers, "never served the ?limit=1 entry"


def test_per_resource_ttl_opt_out_and_cache_control(app: Flask, client: FlaskClient) -> None:
    api = app.extensions["restengine.api"]
    api.register(Customer, cache_ttl=0)
    api.register(Product, cache_control="public, max-age=30")
    shop()
    response = client.get("/api/customers/ABC123")
    assert "X-Cache" not in response.headers and client.get("/api/customers/ABC123").status_code == 200
    product_response = client.get("/api/products")
    assert product_response.headers["Cache-Control"] == "public, max-age=30"
    assert product_response.headers["X-Cache"] == "miss"


@pytest.mark.parametrize("write", ["post", "array", "put", "patch", "delete", "bulk"])
def test_every_api_write_invalidates_lists_and_items(client: FlaskClient, write: str) -> None:
    customer("ABC123", "Ada")
    customer("DEF456", "Dee")
    assert cached(client, "/api/customers")[0] == "miss"
    assert cached(client, "/api/customers")[0] == "hit"
    assert cached(client, "/api/customers/ABC123")[0] == "miss"
    new = {"id": "NEW001", "name": "Nia", "email": "nia@example.com"}
    response = {
        "post": lambda: client.post("/api/customers", json=new),
        "array": lambda: client.post("/api/customers", json=[new]),
        "put": lambda: client.put("/api/customers/ABC123", json={"name": "Ann", "email": "ann@example.com"}),
        "patch": lambda: client.patch("/api/customers/ABC123", json={"name": "Ann"}),
        "delete": lambda: client.delete("/api/customers/ABC123"),
        "bulk": lambda: client.post("/api/customers/_bulk", json={"operations": [{"op": "delete", "id": "ABC123"}]}),
    }[write]()
    assert response.status_code < 300, response.get_data(as_text=True)
    status, listed = cached(client, "/api/customers")
    assert status == "miss"
    names = {item["name"] for item in listed["items"]}
    expected = {"post": {"Ada", "Dee", "Nia"}, "array": {"Ada", "Dee", "Nia"}, "put": {"Ann", "Dee"}}
    assert names == expected.get(write, {"Ann", "Dee"} if write == "patch" else {"Dee"})
    item = client.get("/api/customers/ABC123")
    if write in ("post", "array"):
        assert item.headers.get("X-Cache") == "hit", "creating another customer keeps this one cached"
    elif write in ("delete", "bulk"):
        assert item.status_code == 404, "the deleted item's cached read is gone"
        assert "X-Cache" not in item.headers
    else:
        assert (item.headers.get("X-Cache"), item.json["name"]) == ("miss", "Ann")


def test_a_write_to_one_item_keeps_the_others_cached(client: FlaskClient) -> None:
    customer("ABC123", "Ada")
    customer("DEF456", "Dee")
    for url in ("/api/customers/ABC123", "/api/customers/DEF456", "/api/customers"):
        assert cached(client, url)[0] == "miss"
    assert client.patch("/api/customers/ABC123", json={"name": "Ann"}).status_code == 200
    status, dee = cached(client, "/api/customers/DEF456")
    assert (status, dee["name"]) == ("hit", "Dee")
    assert cached(client, "/api/customers/ABC123")[0] == "miss"
    assert cached(client, "/api/customers/ABC123")[1]["name"] == "Ann"
    status, listed = cached(client, "/api/customers")
    assert status == "miss" and {c["name"] for c in listed["items"]} == {"Ann", "Dee"}


def test_a_legacy_save_of_one_document_invalidates_its_item(client: FlaskClient) -> None:
    ada = customer("ABC123", "Ada")
    customer("DEF456", "Dee")
    assert cached(client, "/api/customers/ABC123")[0] == "miss"
    assert cached(client, "/api/customers/DEF456")[0] == "miss"
    ada.name = "Ann"
    ada.save()  # legacy code beside the API: MongoEngine's post_save
    assert cached(client, "/api/customers/ABC123")[1]["name"] == "Ann"
    assert cached(client, "/api/customers/DEF456")[0] == "hit"


def test_writes_in_hooks_and_in_legacy_code_invalidate(app: Flask, client: FlaskClient) -> None:
    def audit(doc: Any) -> None:  # an after_create hook that writes another collection
        Customer.objects(code="ABC123").first().update(set__name="Audited")  # QuerySet.update: no signal
        customer("AUD001", "Audit trail")  # Document.save: post_save signal

    app.extensions["restengine.api"].register(Product, after_create=audit)
    customer("ABC123", "Ada")
    assert cached(client, "/api/customers")[0] == "miss"
    assert cached(client, "/api/customers")[0] == "hit"
    assert client.post("/api/products", json={"name": "Ink", "price": "1.00"}).status_code == 201
    status, listed = cached(client, "/api/customers")
    assert status == "miss"
    assert {i["name"] for i in listed["items"]} == {"Audited", "Audit trail"}


def test_expanded_references_and_subclasses_share_invalidation(client: FlaskClient) -> None:
    _, _, order = shop()
    url = f"/api/orders/{order.pk}?expand=customer"
    assert cached(client, url)[0] == "miss"
    assert cached(client, url)[0] == "hit"
    assert client.patch("/api/customers/ABC123", json={"name": "Ada Renamed"}).status_code == 200
    status, body = cached(client, url)
    assert status == "miss" and body["customer"]["name"] == "Ada Renamed"

    Circle(name="c", radius=1).save()
    assert cached(client, "/api/shapes")[0] == "miss"
    assert cached(client, "/api/shapes")[0] == "hit"
    assert client.post("/api/circle", json={"name": "d", "radius": 2}).status_code == 201
    status, shapes = cached(client, "/api/shapes")
    assert status == "miss" and len(shapes["items"]) == 2, "a subclass write invalidates the parent's lists"


def test_64_concurrent_misses_cost_one_query(client: FlaskClient) -> None:
    for i in range(30):
        customer(f"CUS{i:03d}", f"C {i}")
    barrier = threading.Barrier(64)

    def get(_: int) -> tuple[int, str]:
        barrier.wait(10)
        response = client.get("/api/customers?sort=name&limit=20")
        return response.status_code, response.headers.get("X-Cache", "")

    with COMMANDS.counting(database_name()) as names, ThreadPoolExecutor(64) as pool:
        outcomes = list(pool.map(get, range(64)))
    assert all(status == 200 for status, _ in outcomes)
    assert sorted(x for _, x in outcomes).count("miss") == 1
    assert names.count("find") == 1, names


def test_stale_is_served_while_one_request_rebuilds(app: Flask, mongodb_uri: str, redis_url: str) -> None:
    app.extensions["restengine.api"].register(Customer, cache_ttl=1)
    client = app.test_client()
    customer("ABC123", "Ada")
    assert cached(client, "/api/customers/ABC123")[0] == "miss"
    time.sleep(1.2)
    cache = app.extensions["restengine.cache"]
    with app.test_request_context("/api/customers/ABC123") as context:
        from restengine.cache import request_key
        from restengine.cache.keys import entry_base

        base = entry_base(cache.database, request_key("customers", context.request.environ))  # its hash slot
    full, value = cache.backend.lookup(base, cache.item_generations("customers", "ABC123"))
    assert value is not None
    assert cache.backend.lock(f"{full}:lock", 5)  # another request is rebuilding it
    assert cached(client, "/api/customers/ABC123")[0] == "stale"
    cache.backend.unlock(f"{full}:lock")
    assert cached(client, "/api/customers/ABC123")[0] == "miss"
    assert cached(client, "/api/customers/ABC123")[0] == "hit"


def _timed(client: FlaskClient, url: str) -> tuple[int, str, float]:
    started = time.monotonic()
    response = client.get(url)
    return response.status_code, response.headers.get("X-Cache", ""), time.monotonic() - started


@pytest.fixture
def breaker_app(mongodb_uri: str, redis_url: str) -> Iterator[Flask]:
    """An app whose circuit breaker cools down in 1 s, with customer ABC123 stored."""
    with legacy_registry():
        app = legacy_app(mongodb_uri, redis_url, RESTENGINE_CACHE_BREAKER_SECONDS=1)
        try:
            customer("ABC123", "Ada")
            yield app
        finally:
            restengine.db.close_all()


def test_redis_down_serves_from_the_database_then_recovers(breaker_app: Flask, redis_server: RedisServer) -> None:
    client = breaker_app.test_client()
    assert _timed(client, "/api/customers/ABC123")[1] == "miss"
    assert _timed(client, "/api/customers/ABC123")[1] == "hit"
    redis_server.stop()
    try:
        outcomes = [_timed(client, "/api/customers/ABC123") for _ in range(20)]
        assert all(status == 200 for status, _, _ in outcomes), outcomes
        assert max(seconds for _, _, seconds in outcomes) < 1.0, "a small bounded added latency"
        assert breaker_app.extensions["restengine.cache"].breaker.open
        assert client.patch("/api/customers/ABC123", json={"name": "Ann"}).status_code == 200
        assert client.get("/api/customers/ABC123").get_json()["name"] == "Ann"
    finally:
        redis_server.start()
    deadline = time.monotonic() + 10
    while _timed(client, "/api/customers/ABC123")[1] != "hit" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _timed(client, "/api/customers/ABC123")[1] == "hit", "recovers by itself"


def test_a_frozen_redis_costs_timeouts_not_errors_and_owed_invalidations_are_paid(
    breaker_app: Flask, redis_server: RedisServer
) -> None:
    client = breaker_app.test_client()
    assert _timed(client, "/api/customers/ABC123")[1] == "miss"
    pid = redis_server.process.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # data kept: the old entry survives the outage
    try:
        # The write cannot bump the generation now; this process owes it.
        assert client.patch("/api/customers/ABC123", json={"name": "Ann"}).status_code == 200
        outcomes = [_timed(client, "/api/customers/ABC123") for _ in range(10)]
        assert all(status == 200 for status, _, _ in outcomes)
        assert max(seconds for _, _, seconds in outcomes) < 1.0
    finally:
        os.kill(pid, signal.SIGCONT)
    time.sleep(1.2)  # the breaker's cooldown
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        response = client.get("/api/customers/ABC123")
        assert response.get_json()["name"] == "Ann", "never the entry from before the write"
        if response.headers["X-Cache"] == "hit":
            break
        time.sleep(0.1)
    assert client.get("/api/customers/ABC123").headers["X-Cache"] == "hit"


def test_without_redis_the_cache_is_per_process(mongodb_uri: str, caplog: pytest.LogCaptureFixture) -> None:
    with legacy_registry():
        app = legacy_app(mongodb_uri, None)
        assert "the response cache lives in this process (one worker only)" in caplog.text
        try:
            client = app.test_client()
            customer("ABC123", "Ada")
            assert not app.extensions["restengine.cache"].shared
            assert cached(client, "/api/customers/ABC123")[0] == "miss"
            assert cached(client, "/api/customers/ABC123")[0] == "hit"
            assert client.patch("/api/customers/ABC123", json={"name": "Ann"}).status_code == 200
            assert cached(client, "/api/customers/ABC123") == ("miss", cached(client, "/api/customers/ABC123")[1])
        finally:
            restengine.db.close_all()


def test_order_placed_through_the_api_invalidates_product_expansions(client: FlaskClient) -> None:
    ada = customer("ABC123", "Ada")
    pen = product("Pen", "1.50")
    url = "/api/orders?expand=lines.product"
    body = {"customer": "ABC123", "lines": [{"product": str(pen.pk), "quantity": 1, "unit_price": "1.50"}]}
    assert client.post("/api/orders", json=body).status_code == 201
    assert cached(client, url)[0] == "miss"
    assert client.patch(f"/api/products/{pen.pk}", json={"name": "Pen 2"}).status_code == 200
    status, listed = cached(client, url)
    assert status == "miss" and listed["items"][0]["lines"][0]["product"]["name"] == "Pen 2"
    assert Order.objects(customer=ada).count() == 1


def test_fresh_hits_skip_flask_and_answer_like_the_view(app: Flask, client: FlaskClient) -> None:
    from flask import request_started

    dispatched: list[str] = []

    def seen(sender: Flask, **_: Any) -> None:
        from flask import request

        dispatched.append(request.path)

    shop()
    request_started.connect(seen, app)
    try:
        for url in ("/api/customers/ABC123", "/api/customers?sort=name&limit=1"):
            miss = client.get(url, headers={"X-Request-ID": "rid-1"})
            hit = client.get(url, headers={"X-Request-ID": "rid-1"})
            assert (miss.headers["X-Cache"], hit.headers["X-Cache"]) == ("miss", "hit")
            assert hit.get_data() == miss.get_data()
            same = {k: v for k, v in miss.headers.items() if k not in ("X-Cache", "Server-Timing")}
            assert {k: v for k, v in hit.headers.items() if k not in ("X-Cache", "Server-Timing")} == same
            not_modified = client.get(url, headers={"If-None-Match": hit.headers["ETag"]})
            assert not_modified.status_code == 304 and not not_modified.get_data()
            assert not_modified.headers["ETag"] == hit.headers["ETag"]
            head = client.head(url)
            assert head.status_code == 200 and not head.get_data()
        assert dispatched == ["/api/customers/ABC123", "/api/customers"], "only the misses reached Flask"
        assert client.get("/api/orders?expand=customer").headers["X-Cache"] == "miss"
        assert client.get("/api/orders?expand=customer").headers["X-Cache"] == "hit"
        assert dispatched[-1] == "/api/orders", "expand hits are served by the view"
    finally:
        request_started.disconnect(seen, app)


def test_an_idle_worker_still_pays_the_invalidations_it_owes(mongodb_uri: str, redis_url: str) -> None:
    import redis

    from restengine.ops.processes import free_port

    with legacy_registry():
        writer = legacy_app(mongodb_uri, redis_url, RESTENGINE_CACHE_BREAKER_SECONDS=1)
        reader = legacy_app(mongodb_uri, redis_url, RESTENGINE_CACHE_BREAKER_SECONDS=1)  # another worker
        # MongoEngine's signals are per process: a separate worker would not hear the writer's saves.
        reader_cache = reader.extensions["restengine.cache"]
        signals.post_save.disconnect(reader_cache._on_document_write)
        signals.post_bulk_insert.disconnect(reader_cache._on_document_write)
        try:
            customer("ABC123", "Ada")
            reads = reader.test_client()
            assert cached(reads, "/api/customers/ABC123")[0] == "miss"
            assert cached(reads, "/api/customers/ABC123")[0] == "hit"
            # The writer is cut off from Redis (a partition, not a frozen server:
            # a frozen one still receives the INCR and runs it when it wakes up).
            connection = writer.extensions["restengine.redis"]
            working = connection.client()
            connection._client = redis.Redis(port=free_port(), socket_connect_timeout=0.1, socket_timeout=0.1)
            try:
                assert writer.test_client().patch("/api/customers/ABC123", json={"name": "Ann"}).status_code == 200
                assert cached(reads, "/api/customers/ABC123")[1]["name"] == "Ada", "stale while the bump is owed"
            finally:
                connection._client = working
            # The writer gets no more requests; its background retry sends what it owes.
            deadline = time.monotonic() + 6
            while cached(reads, "/api/customers/ABC123")[1]["name"] != "Ann" and time.monotonic() < deadline:
                time.sleep(0.2)
            assert cached(reads, "/api/customers/ABC123")[1]["name"] == "Ann"
        finally:
            restengine.db.close_all()


def test_item_generations_expire_after_twice_the_longest_entry_life(app: Flask, client: FlaskClient) -> None:
    import redis as redis_lib

    cache = app.extensions["restengine.cache"]
    customer("ABC123", "Ada")
    assert cached(client, "/api/customers/ABC123")[0] == "miss"  # an entry of 60 + 30 s
    assert client.patch("/api/customers/ABC123", json={"name": "Ann"}).status_code == 200
    keys = cache.keys("customers")
    rdb = redis_lib.Redis.from_url(app.extensions["restengine.settings"].redis_url)
    try:
        assert int(rdb.get(keys.life)) == 90_000
        assert 230_000 < rdb.pttl(keys.item("sABC123")) <= 240_000
        assert int(rdb.get(keys.item("sABC123"))) == int(rdb.get(keys.generation)), "set to the new generation"
    finally:
        rdb.close()


class CascadeParent(Document):
    name = StringField()
    meta = {"collection": "cascade_parents"}


class CascadeChild(Document):
    parent = ReferenceField(CascadeParent, reverse_delete_rule=CASCADE)
    meta = {"collection": "cascade_children"}


def test_a_delete_invalidates_what_its_delete_rules_wrote(app: Flask, client: FlaskClient) -> None:
    api = app.extensions["restengine.api"]
    api.register(CascadeParent)
    api.register(CascadeChild)
    parent = CascadeParent(name="p").save()
    CascadeChild(parent=parent).save()
    assert cached(client, "/api/cascade_children")[0] == "miss"
    assert len(cached(client, "/api/cascade_children")[1]["items"]) == 1
    assert client.delete(f"/api/cascade_parents/{parent.pk}").status_code == 204
    status, children = cached(client, "/api/cascade_children")
    assert (status, children["items"]) == ("miss", []), "the cascade deleted the child"


def test_a_304_says_the_same_whether_the_cache_layer_or_the_view_answers(app: Flask, client: FlaskClient) -> None:
    customer("ABC123", "Ada")
    customer("DEF456", "Dee")
    url = "/api/customers?count=exact&limit=1"
    miss = client.get(url)
    assert (miss.headers["X-Cache"], miss.headers["X-Total-Count"]) == ("miss", "2")
    etag = miss.headers["ETag"]
    from_layer = client.get(url, headers={"If-None-Match": etag})  # a fresh hit: answered before Flask
    app.extensions["restengine.api"].register(Customer, cache_ttl=0)  # now only the view can answer
    from_view = client.get(url, headers={"If-None-Match": etag})
    assert from_layer.status_code == from_view.status_code == 304
    assert from_layer.headers["X-Cache"] == "hit" and "X-Cache" not in from_view.headers
    for response in (from_layer, from_view):
        assert "X-Total-Count" not in response.headers, "a 304 carries no representation metadata"
        assert (response.headers["ETag"], response.headers["Link"]) == (etag, miss.headers["Link"])


def test_a_miss_looks_the_entry_up_once(app: Flask, client: FlaskClient) -> None:
    customer("ABC123", "Ada")
    cache = app.extensions["restengine.cache"]
    calls: list[str] = []
    lookup = cache.backend.lookup

    def counted(base: str, generations: Any) -> Any:
        calls.append(base)
        return lookup(base, generations)

    cache.backend.lookup = counted
    try:
        assert client.get("/api/customers/ABC123").headers["X-Cache"] == "miss"
        assert len(calls) == 1, "the view used the cache layer's lookup"
        assert client.get("/api/customers/ABC123").headers["X-Cache"] == "hit"
        assert len(calls) == 2
    finally:
        cache.backend.lookup = lookup


def test_readiness_pings_redis_within_the_readiness_budget(mongodb_uri: str, redis_server: RedisServer) -> None:
    redis_server.flush()
    app = legacy_app(mongodb_uri, redis_server.url, RESTENGINE_REDIS_TIMEOUT_MS=10_000, RESTENGINE_READY_TIMEOUT_MS=200)
    client = app.test_client()
    pid = redis_server.process.pid
    assert pid is not None
    try:
        assert client.get("/readyz").status_code == 200
        os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        response = client.get("/readyz")
        took = time.monotonic() - started
        assert response.status_code == 503 and response.json["checks"]["redis"].startswith("error")
        assert took < 2, (
            f"RESTENGINE_READY_TIMEOUT_MS bounds the Redis ping, not the 10 s request timeout ({took:.1f}s)"
        )
    finally:
        os.kill(pid, signal.SIGCONT)
        restengine.db.close_all()


def test_a_request_with_credentials_never_meets_the_shared_cache(app: Flask, client: FlaskClient) -> None:
    """An operator's own check (here a ``before_request`` that wants a key) is never bypassed by a cached hit."""
    from flask import request

    customer("ABC123", "Ada")

    @app.before_request
    def wants_a_key() -> Any:
        if request.path.startswith("/api/") and request.headers.get("Authorization") != "Bearer k":
            return {"title": "Unauthorized"}, 401
        return None

    url = "/api/customers/ABC123"
    for credentials in ({"Authorization": "Bearer k"}, {"Authorization": "Bearer k", "Cookie": "session=1"}):
        answered = client.get(url, headers=credentials)
        assert answered.status_code == 200 and "X-Cache" not in answered.headers, "neither served nor stored"
    assert client.get(url).status_code == 401, "no entry was stored for the anonymous request to hit"
    client.set_cookie("session", "1")
    assert client.get(url, headers={"Authorization": "Bearer k"}).headers.get("X-Cache") is None


def test_a_cached_read_is_never_sent_to_a_client_that_does_not_take_json(client: FlaskClient) -> None:
    customer("ABC123", "Ada")
    assert cached(client, "/api/customers/ABC123")[0] == "miss"
    assert cached(client, "/api/customers/ABC123")[0] == "hit"
    refused = client.get("/api/customers/ABC123", headers={"Accept": "application/xml"})
    assert refused.status_code == 406 and refused.mimetype == "application/problem+json"
    assert "X-Cache" not in refused.headers
