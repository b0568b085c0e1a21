"""Metrics across gunicorn workers (``restengine.metrics``, prometheus_client's multiprocess mode): a scrape of
any worker adds up every worker's requests exactly, a worker killed and replaced loses and doubles nothing, and
the MongoDB pool's gauges move while a request holds a connection."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from pymongo import MongoClient

from tests.e2e.helpers import get, gunicorn, wait_for

ITEM = "/api/customers/{id}"


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    status, _, body = get(port, "/metrics")
    assert status == 200, body
    found: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            found[s.name].append((s.labels, s.value))
    return found


def total(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for found, v in samples.get(name, []) if all(found.get(k) == want for k, want in labels.items()))


def counts(port: int, route: str, status: str) -> float:
    return total(scrape(port), "http_server_request_duration_seconds_count", route=route, status=status)


def live_workers(port: int) -> set[str]:
    return {labels["pid"] for labels, _ in scrape(port).get("http_server_active_requests", [])}


def seed(mongodb_uri: str, n: int) -> None:
    client: MongoClient[dict[str, Any]] = MongoClient(mongodb_uri)
    try:
        customers = client.get_default_database()["customers"]
        customers.delete_many({})
        customers.insert_many(
            [{"_id": f"CUS{i:03d}", "name": f"Customer {i}", "mail": f"c{i}@example.com"} for i in range(min(n, 1000))]
        )
        customers.insert_many(
            [
                {"_id": f"Z{i:05d}", "name": f"Other {i}", "mail": f"z{i}@example.com"} for i in range(n)
            ]  # ids no request names: a bigger scan
        )
    finally:
        client.close()


def serve_until(port: int, done: Any, most: int = 300) -> int:
    """Item GETs (200), each on a new connection, until ``done()``: how many were sent."""
    sent = 0
    while not done():
        assert sent < most, "the workers did not all take requests"
        assert get(port, f"/api/customers/CUS{sent % 20:03d}")[0] == 200
        sent += 1
    return sent


def test_counts_add_up_across_workers_and_survive_a_replaced_worker(tmp_path: Path, mongodb_uri: str) -> None:
    seed(mongodb_uri, 20)
    env = {"MONGODB_URI": mongodb_uri, "RESTENGINE_DOCUMENTS": "tests.legacy_models", "RESTENGINE_WORKERS": "2"}
    with gunicorn(tmp_path, env, app="restengine.wsgi:app") as (port, _):
        # New connections land on either worker; requests go on until both have served some.
        ok = 30 + serve_until(port, lambda: len(live_workers(port)) == 2)
        for n in range(30):
            assert get(port, f"/api/customers/CUS{n % 20:03d}")[0] == 200
        for n in range(7):
            assert get(port, f"/api/customers/NOP{n:03d}")[0] == 404
        for n in range(5):
            assert get(port, f"/nowhere/{n}")[0] == 404
        assert counts(port, ITEM, "200") == ok, "one scrape adds up every worker's requests, exactly"
        assert counts(port, ITEM, "404") == 7
        assert counts(port, "unmatched", "404") == 5
        workers = live_workers(port)
        os.kill(int(sorted(workers)[0]), signal.SIGKILL)  # gunicorn replaces it
        wait_for(lambda: len(live_workers(port)) == 1, 30, "the dead worker's live gauge to go")
        assert counts(port, ITEM, "200") == ok, "the dead worker's requests are still counted, once"
        ok += serve_until(port, lambda: len(live_workers(port)) == 2 and live_workers(port) != workers)
        assert counts(port, ITEM, "200") == ok, "and its replacement's are added"


def test_pool_gauges_move_while_a_request_holds_a_connection(tmp_path: Path, mongodb_uri: str) -> None:
    seed(mongodb_uri, 20000)
    env = {
        "MONGODB_URI": mongodb_uri,
        "RESTENGINE_DOCUMENTS": "tests.legacy_models",
        "RESTENGINE_WORKERS": "1",
        "RESTENGINE_CACHE_TTL": "0",
    }
    with gunicorn(tmp_path, env, app="restengine.wsgi:app") as (port, _):
        assert get(port, "/api/customers/CUS001")[0] == 200
        before = scrape(port)
        stop = threading.Event()

        def slow() -> None:  # an index-less search and count over 21,000 documents, again and again
            n = 0
            while not stop.is_set():
                get(port, f"/api/customers?name__icontains=zz{n}&count=exact", timeout=10)
                n += 1

        thread = threading.Thread(target=slow)
        thread.start()
        try:
            deadline = time.monotonic() + 15
            seen = 0.0
            while time.monotonic() < deadline and not seen:
                seen = total(scrape(port), "mongodb_pool_checked_out")
        finally:
            stop.set()
            thread.join(30)
        after = scrape(port)
    assert seen >= 1, "a connection checked out while the search ran"
    assert total(after, "mongodb_pool_connections") >= 1
    waits = total(after, "mongodb_pool_checkout_wait_seconds_count") - total(
        before, "mongodb_pool_checkout_wait_seconds_count"
    )
    assert waits >= 2, "each query asked the pool for a connection"
    assert total(after, "mongodb_command_duration_seconds_count", command="aggregate") > total(
        before, "mongodb_command_duration_seconds_count", command="aggregate"
    ), "count_documents is an aggregate"
