"""The process model in the packaged gunicorn configuration, loaded in a fresh interpreter per case.

The configuration is the module ``restengine.ops.gunicorn_conf`` (gunicorn's
``--config python:restengine.ops.gunicorn_conf``); the repository's
``gunicorn.conf.py`` only loads it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from restengine.ops.stack import PACKAGED_GUNICORN_CONFIG, gunicorn_config

MODULE = "restengine.ops.gunicorn_conf"
REPO_FILE = Path(__file__).resolve().parents[2] / "gunicorn.conf.py"

# argv[1]: a module name (loaded as gunicorn's python: form does) or a file path (as -c FILE does).
PROBE = """
import json, os, runpy, sys
where = sys.argv[1]
ns = runpy.run_path(where) if where.endswith(".py") else runpy.run_module(where)
out = {k: ns[k] for k in ("worker_class", "workers", "threads", "worker_connections", "keepalive", "timeout",
       "graceful_timeout", "max_requests", "max_requests_jitter", "worker_tmp_dir", "preload_app",
       "accesslog", "errorlog", "access_log_format", "control_socket_disable", "wsgi_app",
       "forwarded_allow_ips", "secure_scheme_headers")}
out["pool_threads"] = os.environ["RESTENGINE_THREADS"]
out["hooks"] = sorted(k for k in ("on_starting", "post_fork", "worker_exit") if callable(ns.get(k)))
out["pymongo_imported"] = "pymongo" in sys.modules
out["heavy_imported"] = sorted({"flask", "pymongo", "mongoengine", "redis", "restengine.app"} & set(sys.modules))
try:
    from gevent import monkey
    out["socket_patched"] = monkey.is_module_patched("socket")
except ImportError:
    out["socket_patched"] = None
print(json.dumps(out))
"""


def load(where: str = MODULE, **env: str) -> dict[str, Any]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RESTENGINE_") and k != "WEB_CONCURRENCY"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, where], env={**clean, **env}, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_defaults_are_gthread_sized_from_the_cpus() -> None:
    conf = load()
    cpus = len(os.sched_getaffinity(0))
    assert conf["worker_class"] == "restengine.ops.worker.ThreadWorker"
    assert conf["workers"] == max(2, cpus)
    assert conf["threads"] == 8
    assert conf["pool_threads"] == "8", "the app sizes its pool from the threads"
    assert conf["worker_connections"] == 1000, "every client of a busy worker gets a turn, none waits in the backlog"
    assert (conf["max_requests"], conf["max_requests_jitter"]) == (0, 0), "no worker recycling unless asked"
    assert conf["graceful_timeout"] > 0
    assert conf["worker_tmp_dir"] == ("/dev/shm" if os.path.isdir("/dev/shm") else None)
    assert conf["accesslog"] is None and conf["errorlog"] == "-", "nginx in front logs every request"
    assert "%(M)s" in conf["access_log_format"] and "x-request-id" in conf["access_log_format"]
    assert conf["hooks"] == ["on_starting", "post_fork", "worker_exit"]
    assert conf["preload_app"] is True, "the app is built once, in the master"
    assert conf["control_socket_disable"] is True, "two instances on one host must not share a control socket"
    assert conf["wsgi_app"] == "restengine.wsgi:app"
    assert conf["pymongo_imported"] is False, "the config imports no driver before the worker class is settled"
    assert conf["heavy_imported"] == [], "nor Flask, Redis or the app"


def test_recycling_preload_and_the_access_log_are_switches() -> None:
    recycled = load(RESTENGINE_MAX_REQUESTS="5000")
    assert (recycled["max_requests"], recycled["max_requests_jitter"]) == (5000, 500), "a tenth of jitter"
    assert load(RESTENGINE_MAX_REQUESTS="5000", RESTENGINE_MAX_REQUESTS_JITTER="7")["max_requests_jitter"] == 7
    assert load(RESTENGINE_PRELOAD="off")["preload_app"] is False
    assert load(RESTENGINE_ACCESS_LOG="on")["accesslog"] == "-"
    for key, value in (("RESTENGINE_PRELOAD", "maybe"), ("RESTENGINE_MAX_REQUESTS", "-1")):
        clean = {k: v for k, v in os.environ.items() if not k.startswith("RESTENGINE_")}
        done = subprocess.run(
            [sys.executable, "-c", PROBE, MODULE], env={**clean, key: value}, capture_output=True, text=True
        )
        assert done.returncode != 0 and key in done.stderr


def test_gunicorn_trusts_forwarded_headers_only_as_the_app_does() -> None:
    """gunicorn's own X-Forwarded-Proto handling follows RESTENGINE_PROXY_COUNT (by default it trusts 127.0.0.1)."""
    alone = load()
    assert alone["forwarded_allow_ips"] == "" and alone["secure_scheme_headers"] == {}, "no proxy: trust nobody"
    behind = load(RESTENGINE_PROXY_COUNT="1")
    assert behind["forwarded_allow_ips"] == "*", "the app's ProxyFix trusts the nearest hop whatever its address"
    assert behind["secure_scheme_headers"] == {"X-FORWARDED-PROTO": "https"}, "only the header nginx overwrites"


def test_environment_overrides_the_process_model() -> None:
    conf = load(RESTENGINE_WORKERS="5", RESTENGINE_THREADS="3")
    assert (conf["workers"], conf["threads"], conf["pool_threads"]) == (5, 3, "3")
    assert load(WEB_CONCURRENCY="7")["workers"] == 7


def test_gevent_is_one_variable_and_patches_first() -> None:
    conf = load(RESTENGINE_WORKER_CLASS="gevent", RESTENGINE_WORKER_CONNECTIONS="50")
    assert conf["worker_class"] == "gevent"
    assert conf["socket_patched"] is True
    assert conf["pool_threads"] == "50", "the pool is sized from the greenlets a worker runs"
    assert load()["socket_patched"] is False
    assert load(RESTENGINE_WORKER_CLASS="gevent")["worker_connections"] == 100, "greenlets, each may hold a socket"


def test_the_repository_file_loads_the_packaged_configuration() -> None:
    assert load(str(REPO_FILE)) == load()
    gevent = {"RESTENGINE_WORKER_CLASS": "gevent", "RESTENGINE_WORKERS": "3"}
    assert load(str(REPO_FILE), **gevent) == load(**gevent)


def test_serve_and_up_use_the_packaged_configuration_outside_the_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RESTENGINE_GUNICORN_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert gunicorn_config() == PACKAGED_GUNICORN_CONFIG == f"python:{MODULE}"
    (tmp_path / "gunicorn.conf.py").write_text("workers = 1\n")
    assert gunicorn_config() == str(tmp_path / "gunicorn.conf.py"), "a gunicorn.conf.py where they run comes first"
    monkeypatch.setenv("RESTENGINE_GUNICORN_CONFIG", "python:myapp.gunicorn_conf")
    assert gunicorn_config() == "python:myapp.gunicorn_conf"
