"""Overload and database faults: 503 + Retry-After within the budget, then recovery."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pymongo
import pytest
from flask.testing import FlaskClient
from pymongo import MongoClient

from restengine import create_app as make_api_app
from restengine import db
from restengine.ops.dbserver import DatabaseServer
from restengine.ops.processes import free_port
from tests.probe_app import make_app

BUDGET_MS = 600


def _client(uri: str, **config: object) -> FlaskClient:
    return make_app({"MONGODB_URI": uri, "RESTENGINE_DB_TIMEOUT_MS": BUDGET_MS, **config}).test_client()


def _assert_unavailable(response: object, elapsed: float) -> None:
    assert response.status_code == 503  # type: ignore[attr-defined]
    assert response.mimetype == "application/problem+json"  # type: ignore[attr-defined]
    assert int(response.headers["Retry-After"]) >= 1  # type: ignore[attr-defined]
    assert response.get_json()["status"] == 503  # type: ignore[attr-defined]
    assert elapsed < BUDGET_MS / 1000 + 1.0, f"answered after {elapsed:.2f}s: bounded by the budget, not a hang"


def _timed_get(client: FlaskClient, path: str = "/probe") -> tuple[object, float]:
    started = time.monotonic()
    response = client.get(path)
    return response, time.monotonic() - started


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[DatabaseServer]:
    """A database server this test may stop, freeze and restart."""
    server = DatabaseServer(tmp_path, free_port())
    server.start()
    yield server
    if server.process and server.process.proc:
        os.kill(server.process.proc.pid, signal.SIGCONT)
    server.stop()
    db.close_all()


def test_exhausted_pool_answers_503_within_the_budget(mongodb_uri: str) -> None:
    client = _client(mongodb_uri, RESTENGINE_THREADS=1, RESTENGINE_POOL_MAX=1)
    assert client.get("/probe").status_code == 200
    admin = MongoClient(mongodb_uri)
    admin.admin.command(
        {
            "configureFailPoint": "failCommand",
            "mode": {"times": 1},
            "data": {"failCommands": ["find"], "blockConnection": True, "blockTimeMS": 3000},
        }
    )
    try:
        # Something else in the process (a long report, a legacy job) holds the
        # only pooled connection for longer than a request's budget.
        def hold() -> None:
            with pymongo.timeout(5):
                db.get_database().probe.find_one()

        holder = threading.Thread(target=hold)
        holder.start()
        time.sleep(0.2)
        response, elapsed = _timed_get(client)
        _assert_unavailable(response, elapsed)
        holder.join(10)
    finally:
        admin.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
        admin.close()
    assert client.get("/probe").status_code == 200, "serves again once the pool frees up"
    db.close_all()


def test_unreachable_database_answers_503_within_the_budget() -> None:
    client = _client(f"mongodb://127.0.0.1:{free_port()}/x?directConnection=true")
    response, elapsed = _timed_get(client)
    _assert_unavailable(response, elapsed)
    assert response.get_json()["title"] == "Database unavailable"  # type: ignore[attr-defined]
    db.close_all()


def _wait_stopped(pid: int) -> None:
    """Until the process is stopped: a signal is delivered asynchronously, after ``kill`` has returned."""
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
        assert time.monotonic() < deadline, "the database server did not stop"
        time.sleep(0.01)


def test_recovers_from_a_frozen_database_without_restart(own_server: DatabaseServer) -> None:
    client = _client(own_server.uri)
    assert client.get("/probe").status_code == 200
    assert own_server.process and own_server.process.proc
    pid = own_server.process.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        _wait_stopped(pid)
        response, elapsed = _timed_get(client)
        _assert_unavailable(response, elapsed)
        ready, elapsed = _timed_get(client, "/readyz")
        assert ready.status_code == 503 and "database" in ready.get_json()["detail"]  # type: ignore[attr-defined]
    finally:
        os.kill(pid, signal.SIGCONT)
    assert _eventually_ok(client)


def test_recovers_after_the_database_restarts(own_server: DatabaseServer) -> None:
    client = _client(own_server.uri)
    assert client.get("/probe").status_code == 200
    own_server.stop()
    response, elapsed = _timed_get(client)
    _assert_unavailable(response, elapsed)
    own_server.start()
    assert _eventually_ok(client), "the same app serves again once the database is back"


def _eventually_ok(client: FlaskClient, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if client.get("/probe").status_code == 200:
            return True
        time.sleep(0.2)
    return False


def test_a_frozen_database_is_a_503_even_for_a_query_with_its_own_time_limit(own_server: DatabaseServer) -> None:
    """A query's own limit (RESTENGINE_QUERY_TIME_MS) ends before the deadline; when the database does not
    answer at all, that is still the database's 503, never the client's 'query too expensive'."""
    client = make_api_app(
        {"MONGODB_URI": own_server.uri, "RESTENGINE_DB_TIMEOUT_MS": BUDGET_MS, "RESTENGINE_QUERY_TIME_MS": 200,
         "RESTENGINE_DOCUMENTS": "restengine.demo.bookstore", "RESTENGINE_CACHE_TTL": 0}
    ).test_client()  # fmt: skip
    assert client.get("/api/books?title__icontains=x").status_code == 200
    assert own_server.process and own_server.process.proc
    pid = own_server.process.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        _wait_stopped(pid)
        response, elapsed = _timed_get(client, "/api/books?title__icontains=x")
        _assert_unavailable(response, elapsed)
        assert response.get_json()["title"] == "Database unavailable"  # type: ignore[attr-defined]
    finally:
        os.kill(pid, signal.SIGCONT)
