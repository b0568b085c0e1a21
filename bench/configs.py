"""What ``bench.run`` measures: every configuration (RestEngine's and its peers'), how to start
it, the URLs it answers, and which workloads it runs in which order."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from bench.procs import App, command_app, gunicorn_app, launch
from restengine.ops.dbserver import HOST
from restengine.ops.processes import free_port
from restengine.ops.settings import load_stack_settings
from restengine.ops.stack import Stack

# Starts one configuration, ready: (log directory, environment, health path) -> the started app.
Starter = Callable[[Path, dict[str, str], str], App]

ALL = ("item", "list", "expand", "create", "mix")
QUICK = ("restengine gthread", "fastapi async", "empty flask (ceiling)")  # the --quick run's configurations
EVE_WHERE = quote('{"tags":"{tag}"}', safe="{}")
UVICORN = (sys.executable, "-m", "uvicorn", "--workers", "2", "--loop", "uvloop", "--http", "httptools",
           "--no-access-log", "--host", HOST, "--port")  # fmt: skip


@dataclasses.dataclass
class Config:
    """How to start one thing to measure, and the URLs it answers."""

    name: str
    start: Starter
    workloads: tuple[str, ...]
    item: str = "/api/books/{id}"
    list: str = "/api/books?tags={tag}&limit=20"
    expand: str = "/api/books?tags={tag}&limit=20&expand=author"
    create: str = "/api/books"
    body: str | None = None
    deep: tuple[str, str] | None = None  # (page 1 path, page 500 path)
    health: str = "/healthz"


def gunicorn(app: str, **extra: str) -> Starter:
    """gunicorn with the project's gunicorn.conf.py serving ``app``, ``extra`` added to its environment."""

    def start(log: Path, env: dict[str, str], health: str) -> App:
        port = free_port()
        return launch([gunicorn_app(f"g{port}", port, {**env, **extra}, log, app, health)], port)

    return start


def command(argv: Callable[[int], list[str]]) -> Starter:
    """The server command ``argv(port)``."""

    def start(log: Path, env: dict[str, str], health: str) -> App:
        port = free_port()
        return launch([command_app(f"p{port}", argv(port), port, env, log, health)], port)

    return start


def restengine_stack(log: Path, env: dict[str, str], health: str) -> App:
    """nginx in front of two gthread instances (and the watcher), on the shared database and Redis."""
    settings = load_stack_settings(
        {"RESTENGINE_DATA_DIR": str(log / "stack"), "RESTENGINE_HTTP_PORT": free_port(),
         "RESTENGINE_INSTANCE_PORTS": f"{free_port()},{free_port()}"}, environ=env,
    )  # fmt: skip
    stack = Stack(settings, progress=False)
    stack.start()  # ready when it returns (nginx answers only once an instance answers ``health``)
    procs = [p for p in (*stack.instances, stack.watcher, stack.nginx) if p is not None]
    return App(procs, settings.http_port, stack)


def deep_page(books: int) -> int:
    """The deep page measured against page 1: page 500, or the last page of a smaller data set."""
    return min(500, books // 20)


def configs(deep_cursor: str, page: int) -> list[Config]:
    """Every configuration of a full run, in run order; ``deep_cursor`` leads to offset ``page``."""
    deep = ("/api/books?limit=20", f"/api/books?limit=20&cursor={deep_cursor}")
    offset = ("/api/books?limit=20&page=1", f"/api/books?limit=20&page={page}")
    return [
        Config("restengine nginx 2×gthread", restengine_stack, ALL),
        Config("restengine gthread", gunicorn("restengine.wsgi:app"), ALL),
        Config(
            "restengine gthread no cache",
            gunicorn("restengine.wsgi:app", RESTENGINE_CACHE_TTL="0"),
            (*ALL, "deep"),
            deep=deep,
        ),
        Config("restengine gevent", gunicorn("restengine.wsgi:app", RESTENGINE_WORKER_CLASS="gevent"), ALL),
        Config(
            "legacy flask dev server",
            command(lambda p: [sys.executable, "-m", "bench.peers.legacy_flask", "--port", str(p)]),
            (*ALL, "deep"),
            deep=offset,
        ),
        Config(
            "gunicorn sync",
            command(
                lambda p: [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "-c",
                    "bench/peers/gunicorn_sync.conf.py",
                    "-w",
                    "2",
                    "-b",
                    f"{HOST}:{p}",
                    "bench.peers.legacy_flask:app",
                ]
            ),
            ALL,
        ),
        Config("legacy flask, restengine's gunicorn", gunicorn("bench.peers.legacy_flask:app"), ALL),
        Config("fastapi threadpool", command(lambda p: [*UVICORN, str(p), "bench.peers.fastapi_threadpool:app"]), ALL),
        Config(
            "fastapi async",
            command(lambda p: [*UVICORN, str(p), "bench.peers.fastapi_async:app"]),
            (*ALL, "deep"),
            deep=offset,
        ),
        Config(
            "eve",
            gunicorn("bench.peers.eve_app:app"),
            ALL,
            list=f"/api/books?where={EVE_WHERE}&max_results=20",
            expand=f"/api/books?where={EVE_WHERE}&max_results=20&embedded=%7B%22author%22:1%7D",
            body='{"title":"Bench","isbn":"{isbn}","author":"{author}","price":9.99,"tags":["bench"]}',
        ),
        Config(
            "empty flask (ceiling)", gunicorn("bench.peers.empty_app:app"), ("item",), item="/empty", health="/empty"
        ),
        Config("raw pymongo (ceiling)", gunicorn("bench.peers.raw_pymongo:app"), ("item", "list")),
    ]


def choose(all_configs: list[Config], *, quick: bool, only: str) -> list[Config]:
    """The configurations a run measures: those named in ``only`` (comma-separated substrings of
    their names) if given, else the ``QUICK`` ones for a quick run, else all."""
    if only:
        wanted = only.split(",")
        return [c for c in all_configs if any(w in c.name for w in wanted)]
    if quick:
        return [c for c in all_configs if c.name in QUICK]
    return all_configs


def series(config: Config, levels: tuple[int, ...], quick: bool) -> list[tuple[str, tuple[int, ...]]]:
    """(workload, connection levels) in run order; each starts on a fresh database.

    The deep pages are two series, so page 500 is not measured inside page 1's backlog.
    """
    out: list[tuple[str, tuple[int, ...]]] = []
    for workload in config.workloads:
        if quick and workload not in ("item", "list"):
            continue
        out += [("deep1", (64,)), ("deep500", (64,))] if workload == "deep" else [(workload, levels)]
    return out
