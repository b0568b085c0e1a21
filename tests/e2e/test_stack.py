"""``restengine up`` end to end: nginx -> two gunicorn instances -> Flask -> the database over TCP."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymongo import MongoClient

from restengine.ops.processes import port_open
from tests.e2e.helpers import get, get_json, pid_alive, wait_for, worker_pids
from tests.e2e.upstack import UpStack, start_up, stop_up


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpStack]:
    stack = start_up(tmp_path_factory.mktemp("up"))
    yield stack
    stop_up(stack)


def test_ready_through_nginx(stack: UpStack) -> None:
    status, body = get_json(stack.http, "/readyz")
    assert status == 200, body
    assert body["checks"] == {"database": "ok", "redis": "ok"}


def test_demo_data_is_seeded_on_first_run(stack: UpStack) -> None:
    with MongoClient(f"mongodb://127.0.0.1:{stack.ports['db']}/?directConnection=true") as client:
        database = client["restengine"]
        assert database.books.estimated_document_count() >= 10_000
        assert database.author.estimated_document_count() > 0
        assert {"isbn_1", "author_1"} <= set(database.books.index_information())


def test_proxy_headers_reach_the_app(stack: UpStack) -> None:
    status, headers, body = get(stack.http, "/", headers={"X-Request-ID": "trace-42"})
    assert status == 200
    assert headers["x-request-id"] == "trace-42"
    links = json.loads(body)["links"]
    assert links["health"] == f"http://127.0.0.1:{stack.http}/healthz", "Host/X-Forwarded-* honoured via ProxyFix"
    generated = get(stack.http, "/healthz")[1]["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated), "nginx generates an id when the client sends none"


def test_requests_reach_both_instances_and_several_workers(stack: UpStack) -> None:
    errors = []

    def hammer() -> None:
        for _ in range(60):
            status = get(stack.http, "/healthz")[0]
            if status != 200:
                errors.append(status)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    access = (stack.data_dir / "log" / "nginx-access.log").read_text()
    for port in stack.ports["instances"]:  # type: ignore[union-attr]
        assert f"127.0.0.1:{port}" in access, f"no request reached the instance on port {port}"
    pids = set()
    for name in ("restengine-1", "restengine-2"):
        served = worker_pids(stack.data_dir / "log" / f"{name}.log")
        assert served, f"{name} served nothing"
        pids |= served
    assert len(pids) >= 3, f"only workers {pids} served 480 concurrent requests"


def test_kill_9_of_an_instance_loses_no_get(stack: UpStack) -> None:
    victim = stack.pids()["restengine-1"]
    results: list[int | str] = []
    stop = threading.Event()

    def stream() -> None:
        while not stop.is_set() and len(results) < 2000:
            try:
                results.append(get(stack.http, "/healthz")[0])
            except OSError as exc:  # a reset or a timeout is a failed GET too
                results.append(type(exc).__name__)

    streams = [threading.Thread(target=stream) for _ in range(4)]
    for thread in streams:
        thread.start()
    time.sleep(1.0)
    os.kill(victim, signal.SIGKILL)
    time.sleep(3.0)
    stop.set()
    for thread in streams:
        thread.join(30)
    assert len(results) > 50
    failures = [status for status in results if status != 200]
    assert not failures, f"{len(failures)} of {len(results)} GETs failed: {sorted(set(map(str, failures)))}"
    # The supervisor restarts the dead instance.
    wait_for(lambda: stack.pids()["restengine-1"] != victim, 30, "restengine-1 to be restarted")
    wait_for(lambda: port_open("127.0.0.1", stack.ports["instances"][0]), 30, "restengine-1 to listen again")  # type: ignore[index]


def test_sigint_leaves_no_process_behind(tmp_path: Path) -> None:
    stack = start_up(tmp_path)
    pids = set(stack.pids().values())
    for name in ("restengine-1", "restengine-2"):
        get(stack.http, "/healthz")
        pids |= worker_pids(stack.data_dir / "log" / f"{name}.log")
    nginx_pids = {
        int(p)
        for p in re.findall(
            r"\d+", subprocess.run(["pgrep", "-f", str(stack.data_dir)], capture_output=True, text=True).stdout
        )
    }
    pids |= nginx_pids
    stack.proc.send_signal(signal.SIGINT)
    assert stack.proc.wait(90) == 0
    assert "RestEngine stopped." in stack.output.read_text()
    assert [pid for pid in pids if pid_alive(pid)] == []
    assert [port for port in stack.all_ports() if port_open("127.0.0.1", port)] == []
    leftover = subprocess.run(["pgrep", "-f", str(stack.data_dir)], capture_output=True, text=True).stdout.split()
    assert leftover == []


def _request(
    port: int, method: str, path: str, body: object = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        data = None if body is None else json.dumps(body).encode()
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=data, headers=all_headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def test_api_through_nginx(stack: UpStack) -> None:
    status, headers, body = get(stack.http, "/api/books?tags=history&limit=100&expand=author&sort=-price")
    assert status == 200, body[:300]
    assert len(body) > 2 * 16 * 1024, "spans several of nginx's 16k proxy buffers and arrives whole"
    page = json.loads(body)
    assert len(page["items"]) == 100 and isinstance(page["items"][0]["author"], dict)
    next_url = page["next"]
    assert next_url.startswith(f"http://127.0.0.1:{stack.http}/api/books?"), "absolute links name the proxy"
    assert headers["link"] == f'<{next_url}>; rel="next"'
    second_status, _, second_body = get(stack.http, next_url.split(str(stack.http), 1)[1])
    assert second_status == 200, second_body[:500]
    second = json.loads(second_body)
    assert not {i["id"] for i in second["items"]} & {i["id"] for i in page["items"]}

    author = page["items"][0]["author"]["id"]
    new = {"title": "Through nginx", "isbn": "9781111111116", "author": author, "price": "3.50"}
    status, headers, body = _request(stack.http, "POST", "/api/books", new)
    assert status == 201, body
    location = headers["location"]
    assert location.startswith(f"http://127.0.0.1:{stack.http}/api/books/")
    item_path = location.split(str(stack.http), 1)[1]
    etag = headers["etag"]
    patch = {"Content-Type": "application/merge-patch+json", "If-Match": etag}
    assert _request(stack.http, "PATCH", item_path, {"price": "4.00"}, patch)[0] == 200
    assert _request(stack.http, "PATCH", item_path, {"price": "5.00"}, patch)[0] == 412, "stale ETag"
    assert _request(stack.http, "DELETE", item_path)[0] == 204
    assert get(stack.http, item_path)[0] == 404


def test_a_write_through_one_instance_is_never_stale_through_the_other(stack: UpStack) -> None:
    ports = stack.ports["instances"]
    assert isinstance(ports, list)
    author = json.loads(get(stack.http, "/api/author?limit=1")[2])["items"][0]["id"]
    new = {"title": "Coherence", "isbn": "9782222222228", "author": author, "pages": 1}
    status, _, body = _request(ports[0], "POST", "/api/books", new)
    assert status == 201, body
    item = f"/api/books/{json.loads(body)['id']}"
    listing = "/api/books?isbn=9782222222228"
    stale: list[tuple[int, int]] = []
    hits = 0
    HOST = {"Host": "api.example"}
    for i in range(1000):
        writer, reader = (ports[0], ports[1]) if i % 2 == 0 else (ports[1], ports[0])
        patch = {"Content-Type": "application/merge-patch+json"}
        assert _request(writer, "PATCH", item, {"pages": i + 2}, patch)[0] == 200
        # One Host for both instances, as behind nginx: they share cache entries.
        status, _, body = get(reader, item if i % 4 < 2 else listing, headers=HOST)
        assert status == 200, body
        doc = json.loads(body)
        pages = doc["pages"] if "pages" in doc else doc["items"][0]["pages"]
        if pages != i + 2:
            stale.append((i, pages))
        # The same read through the other instance comes from the shared cache.
        again = get(writer, item if i % 4 < 2 else listing, headers=HOST)[1]
        hits += again.get("x-cache") == "hit"
    assert stale == [], f"{len(stale)} stale reads, first ones: {stale[:5]}"
    assert hits > 900, f"only {hits} of 1000 repeated reads were cache hits"


def test_redis_frozen_then_stopped_under_load_costs_no_errors(stack: UpStack) -> None:
    author = json.loads(get(stack.http, "/api/author?limit=1")[2])["items"][0]["id"]
    new = {"title": "Weather", "isbn": "9783333333334", "author": author, "pages": 1}
    status, _, body = _request(stack.http, "POST", "/api/books", new)
    assert status == 201, body
    item = f"/api/books/{json.loads(body)['id']}"
    reads = [item, "/api/books?tags=history&limit=5", "/api/author?limit=5"]
    outcomes: list[tuple[int | str, float]] = []
    written = [1]
    stop = threading.Event()

    def reader(index: int) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                status = get(stack.http, reads[index % len(reads)])[0]
            except OSError as exc:
                status = type(exc).__name__
            outcomes.append((status, time.monotonic() - started))
            index += 1

    def writer() -> None:
        patch = {"Content-Type": "application/merge-patch+json"}
        while not stop.is_set():
            started = time.monotonic()
            status = _request(stack.http, "PATCH", item, {"pages": written[-1] + 1}, patch)[0]
            outcomes.append((status, time.monotonic() - started))
            if status == 200:
                written.append(written[-1] + 1)
            time.sleep(0.1)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(4)] + [threading.Thread(target=writer)]
    redis_pid = stack.pids()["redis"]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        os.kill(redis_pid, signal.SIGSTOP)  # slow: every call times out
        time.sleep(3.0)
        os.kill(redis_pid, signal.SIGCONT)
        time.sleep(1.0)
        os.kill(redis_pid, signal.SIGTERM)  # down: up restarts it, empty
        wait_for(lambda: stack.pids()["redis"] != redis_pid, 20, "redis to be restarted")
        time.sleep(2.0)
    finally:
        if pid_alive(redis_pid):
            os.kill(redis_pid, signal.SIGCONT)
        stop.set()
        for thread in threads:
            thread.join(30)
    failures = [status for status, _ in outcomes if status not in (200,)]
    assert len(outcomes) > 100 and not failures, f"{len(failures)} of {len(outcomes)} failed: {set(map(str, failures))}"
    slowest = max(seconds for _, seconds in outcomes)
    assert slowest < 3.0, f"slowest request took {slowest:.2f}s"
    host = {"Host": "api.example"}

    def fresh_everywhere() -> bool:
        for port in stack.ports["instances"]:  # type: ignore[union-attr]
            if json.loads(get(port, item, headers=host)[2])["pages"] != written[-1]:
                return False
        return True

    wait_for(fresh_everywhere, 10, "the last write to be visible through both instances")
    wait_for(lambda: get(stack.http, item)[1].get("x-cache") == "hit", 15, "the cache to serve hits again")
    assert json.loads(get(stack.http, "/readyz")[2])["checks"]["redis"] == "ok"


def test_writes_that_bypass_the_api_reach_cached_reads_through_the_watcher(stack: UpStack) -> None:
    assert "restengine-watch" in stack.pids() or any("watch" in name for name in stack.pids())
    listing = "/api/author?sort=name&limit=3"
    first = json.loads(get(stack.http, listing)[2])["items"][0]
    # Cached (an earlier test's Redis outage may still have a bump owed, retried meanwhile).
    wait_for(lambda: get(stack.http, listing)[1]["x-cache"] == "hit", 10, "the list to be cached")
    with MongoClient(f"mongodb://127.0.0.1:{stack.ports['db']}/?directConnection=true") as client:
        client["restengine"].author.update_one({"name": first["name"]}, {"$set": {"bio": "changed behind the API"}})
    wait_for(
        lambda: json.loads(get(stack.http, listing)[2])["items"][0]["bio"] == "changed behind the API",
        5,
        "the watcher to invalidate the cached list",
    )
