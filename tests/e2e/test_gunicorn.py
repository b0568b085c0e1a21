"""One gunicorn instance with RestEngine's gunicorn configuration, on the real database server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from restengine.ops.dbserver import DatabaseServer
from restengine.ops.processes import free_port, port_open
from restengine.ops.stack import PACKAGED_GUNICORN_CONFIG
from tests.e2e.helpers import (
    REPO_GUNICORN_CONFIG,
    ROOT,
    get,
    get_json,
    gunicorn,
    gunicorn_argv,
    gunicorn_process,
    pid_alive,
    wait_for,
    worker_pids,
)


def _probe_many(port: int, n: int = 40) -> None:
    for _ in range(n):
        status, body = get_json(port, "/probe")
        assert status == 200, body


FORK_WARNING = "opened before fork"


@pytest.mark.parametrize("config", [PACKAGED_GUNICORN_CONFIG, REPO_GUNICORN_CONFIG], ids=["packaged", "repo-file"])
def test_gthread_default_serves_the_database(tmp_path: Path, mongodb_uri: str, config: str) -> None:
    with gunicorn(tmp_path, {"MONGODB_URI": mongodb_uri}, config=config) as (port, log):
        _probe_many(port)
        _status, _headers, _ = get(port, "/healthz", headers={"X-Request-ID": "rid-777"})
    text = log.read_text()
    assert "Using worker: restengine.ops.worker.ThreadWorker" in text
    line = next(entry for entry in text.splitlines() if "rid-777" in entry)
    assert "GET /healthz" in line and "ms pid=" in line, "access log has request time and request id"
    assert FORK_WARNING not in text


def test_preloaded_app_that_used_the_database_gives_workers_fresh_clients(tmp_path: Path, mongodb_uri: str) -> None:
    env = {
        "MONGODB_URI": mongodb_uri,
        "RESTENGINE_PRELOAD": "1",
        "PROBE_QUERY_AT_IMPORT": "1",
        "PYTHONWARNINGS": "always",
    }
    with gunicorn(tmp_path, env) as (port, log):
        _probe_many(port)
    text = log.read_text()
    assert "Traceback" not in text
    assert FORK_WARNING not in text


def test_gevent_worker_is_patched_before_pymongo(tmp_path: Path, mongodb_uri: str) -> None:
    env = {"MONGODB_URI": mongodb_uri, "RESTENGINE_WORKER_CLASS": "gevent", "PYTHONWARNINGS": "always"}
    with gunicorn(tmp_path, env) as (port, log):
        _probe_many(port)
    text = log.read_text()
    assert "Using worker: gevent" in text
    assert "MonkeyPatchWarning" not in text
    assert FORK_WARNING not in text
    assert "Traceback" not in text


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("RESTENGINE_DB_TIMEOUT_MS", "soon"),
        ("MONGODB_URI", "mysql://x"),
        ("RESTENGINE_WORKER_CLASS", "eventlet"),
        ("RESTENGINE_SECRET_KEY", "x"),
        ("RESTENGINE_SECRET_KEY", "a-31-byte-secret-is-one-too-few"),
        ("RESTENGINE_PROXY_COUNT", "-1"),
    ],
)
def test_invalid_configuration_refuses_to_start(key: str, value: str) -> None:
    result = subprocess.run(
        gunicorn_argv(free_port()),
        cwd=ROOT,
        env={**os.environ, key: value},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert key in output
    assert "Traceback" not in output
    assert "Booting worker" not in output


def test_restengine_serve_refuses_invalid_configuration() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "restengine.ops.cli", "serve"],
        env={**os.environ, "RESTENGINE_THREADS": "lots"},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "Error: invalid configuration: RESTENGINE_THREADS: expected an integer, got 'lots'"
    ]


def test_database_fault_through_gunicorn_is_503_then_recovers(tmp_path: Path) -> None:
    server = DatabaseServer(tmp_path / "db", free_port())
    server.start()
    assert server.process and server.process.proc
    pid = server.process.proc.pid
    try:
        with gunicorn(tmp_path, {"MONGODB_URI": server.uri, "RESTENGINE_DB_TIMEOUT_MS": "700"}) as (port, _):
            _probe_many(port, 5)
            os.kill(pid, signal.SIGSTOP)
            try:
                for _ in range(3):
                    started = time.monotonic()
                    status, headers, _ = get(port, "/probe")
                    elapsed = time.monotonic() - started
                    assert status == 503 and headers["content-type"] == "application/problem+json"
                    assert headers["retry-after"] == "2"
                    assert elapsed < 2.0, f"503 after {elapsed:.2f}s: must come within the budget"
            finally:
                os.kill(pid, signal.SIGCONT)
            wait_for(lambda: get(port, "/probe")[0] == 200, 20, "recovery without restart")
    finally:
        os.kill(pid, signal.SIGCONT)
        server.stop()


def test_serve_starts_and_stops_the_embedded_database(tmp_path: Path) -> None:
    port, db_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("MONGODB_URI", "REDIS_URL")}
    env.update(RESTENGINE_DATA_DIR=str(tmp_path / "var"), RESTENGINE_DB_PORT=str(db_port), RESTENGINE_WORKERS="1")
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "restengine.ops.cli", "serve", "--bind", f"127.0.0.1:{port}"],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        wait_for(lambda: proc.poll() is not None or get(port, "/readyz", timeout=2)[0] == 200, 90, "serve to be ready")
        status, body = get_json(port, "/readyz")
        assert status == 200 and body["checks"]["database"] == "ok", log.read_text()
        assert (tmp_path / "var" / "db").is_dir(), "data kept in the project-local data directory"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    assert not port_open("127.0.0.1", port)
    assert not port_open("127.0.0.1", db_port), "the database serve started is stopped with it"


def test_a_graceful_restart_of_the_preloaded_app_drops_no_request(tmp_path: Path, mongodb_uri: str) -> None:
    """The shipped defaults (preload, no recycling): HUP replaces every worker while requests keep coming."""
    with gunicorn_process(tmp_path, {"MONGODB_URI": mongodb_uri}) as (port, log, master):
        _probe_many(port, 10)
        before = worker_pids(log)
        failures: list[object] = []
        stop = threading.Event()

        def keep_asking() -> None:
            while not stop.is_set():
                try:
                    status, body = get_json(port, "/probe")
                except OSError as exc:
                    failures.append(exc)
                    continue
                if status != 200:
                    failures.append(body)

        asking = threading.Thread(target=keep_asking)
        asking.start()
        try:
            os.kill(master.pid, signal.SIGHUP)
            wait_for(lambda: bool(worker_pids(log) - before), 30, "new workers to serve")
            wait_for(lambda: not any(pid_alive(pid) for pid in before), 30, "the old workers to leave")
            time.sleep(0.5)
        finally:
            stop.set()
            asking.join(10)
        assert not failures, failures[:3]
        assert len(worker_pids(log) - before) >= 2
    text = log.read_text()
    assert "Traceback" not in text and FORK_WARNING not in text
