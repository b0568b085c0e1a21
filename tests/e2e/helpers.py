"""Small HTTP and process helpers for the end-to-end tests (loopback only, bounded)."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from restengine.ops.processes import free_port
from restengine.ops.stack import PACKAGED_GUNICORN_CONFIG

ROOT = Path(__file__).resolve().parents[2]
# The repository's gunicorn.conf.py, which loads the packaged configuration.
REPO_GUNICORN_CONFIG = str(ROOT / "gunicorn.conf.py")


def get(
    port: int, path: str, *, headers: dict[str, str] | None = None, timeout: float = 5.0
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def get_json(port: int, path: str, **kwargs: Any) -> tuple[int, Any]:
    status, _, body = get(port, path, **kwargs)
    return status, json.loads(body)


def wait_for(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out after {seconds:.0f}s waiting for {what}")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def worker_pids(log_path: Path) -> set[int]:
    """Worker pids that served requests, from a gunicorn access log (``pid=<N>``)."""
    return {int(m) for m in re.findall(r"pid=<?(\d+)>?", log_path.read_text(errors="replace"))}


def gunicorn_argv(port: int, *app: str, config: str = PACKAGED_GUNICORN_CONFIG) -> list[str]:
    """gunicorn with RestEngine's configuration on 127.0.0.1:``port`` (and an app other than its own)."""
    return [sys.executable, "-m", "gunicorn", "--config", config, "--bind", f"127.0.0.1:{port}", *app]


@contextmanager
def gunicorn(
    tmp_path: Path, env: dict[str, str], app: str = "tests.probe_app:app", *, config: str = PACKAGED_GUNICORN_CONFIG
) -> Iterator[tuple[int, Path]]:
    """One gunicorn instance (2 workers x 4 threads) until the block ends: its port and its log file."""
    with gunicorn_process(tmp_path, env, app, config=config) as (port, log, _):
        yield port, log


@contextmanager
def gunicorn_process(
    tmp_path: Path, env: dict[str, str], app: str = "tests.probe_app:app", *, config: str = PACKAGED_GUNICORN_CONFIG
) -> Iterator[tuple[int, Path, subprocess.Popen[bytes]]]:
    """:func:`gunicorn`, and its master process (the leader of its own process group, to kill it whole)."""
    port = free_port()
    log = tmp_path / f"gunicorn-{port}.log"
    full_env = {**os.environ, "RESTENGINE_WORKERS": "2", "RESTENGINE_THREADS": "4", **env}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            gunicorn_argv(port, app, config=config),
            cwd=ROOT,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        wait_for(lambda: proc.poll() is not None or get(port, "/healthz", timeout=1)[0] == 200, 60, "gunicorn")
        assert proc.poll() is None, log.read_text()
        yield port, log, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(40)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def call(
    port: int, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    """One request on a fresh connection; the JSON body decoded (None when empty)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    all_headers = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        all_headers.setdefault("Content-Type", "application/json")
    try:
        conn.request(method, path, body=data, headers=all_headers)
        response = conn.getresponse()
        raw = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(raw) if raw else None
    finally:
        conn.close()


def create_key(env: dict[str, str], role: str, name: str) -> str:
    """An API key for ``role``, made by ``restengine keys create`` on the database ``env`` names (as operators do)."""
    created = subprocess.run(
        [sys.executable, "-m", "restengine.ops.cli", "keys", "create", "--role", role, "--name", name],
        env={**env, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=True,
    )
    return created.stdout.strip().splitlines()[-1]
