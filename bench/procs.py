"""Starting and stopping what the benchmarks run: the shared Redis and demo data, a database
restored before every workload, and the apps under test."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
from collections.abc import Sequence
from pathlib import Path

from bench.paths import ROOT
from restengine.config import DEMO_MODULE
from restengine.ops.dbserver import HOST, DatabaseServer
from restengine.ops.processes import Managed, free_port
from restengine.ops.settings import load_stack_settings
from restengine.ops.stack import Stack, gunicorn_process, http_ok, local_secret, prepare_database, redis_process


def sigterm_as_interrupt() -> None:
    """From now on, SIGTERM raises KeyboardInterrupt as Ctrl-C does, so the same clean-up runs."""
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def kill(procs: Sequence[Managed]) -> None:
    """Kill ``procs`` and what is left of their process groups: a graceful stop would wait for their backlog."""
    for proc in procs:
        proc.stop_signal = signal.SIGKILL
    for proc in procs:
        proc.stop()


def start_all(procs: Sequence[Managed]) -> None:
    """Start ``procs``, then wait until each is ready; on any failure (or Ctrl-C) kill them all and re-raise."""
    try:
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.wait_ready()
    except BaseException:
        kill(procs)
        raise


@dataclasses.dataclass
class App:
    """A started app under test: its processes, the port it answers on, and the Stack that owns them, if any."""

    procs: list[Managed]
    port: int
    stack: Stack | None = None

    def kill(self) -> None:
        """Kill every process of the app: it is thrown away, and a graceful stop would wait for its backlog."""
        if self.stack is not None:  # the stack's processes are ``procs``: it stops them in its own order
            for proc in self.procs:
                proc.stop_signal = signal.SIGKILL
            self.stack.stop()
        kill(self.procs)


def launch(procs: list[Managed], port: int) -> App:
    """Start ``procs`` (see ``start_all``) as one app answering on ``port``."""
    start_all(procs)
    return App(procs, port)


def gunicorn_app(name: str, port: int, env: dict[str, str], log_dir: Path, app: str, health: str,
                 options: Sequence[str] = ()) -> Managed:  # fmt: skip
    """gunicorn with the project's gunicorn.conf.py serving ``app`` (module:variable) on ``port``,
    started from the repository root; ready when ``GET health`` answers 200. ``options`` are more
    gunicorn flags, which override the configuration (e.g. ``--max-requests``). Not started yet."""
    proc = gunicorn_process(name, port, env, log_dir)
    return dataclasses.replace(proc, argv=[*proc.argv, *options, app], cwd=ROOT, ready=lambda: http_ok(port, health))


def command_app(name: str, argv: list[str], port: int, env: dict[str, str], log_dir: Path, health: str) -> Managed:
    """Any server command listening on ``port``, started from the repository root; ready when
    ``GET health`` answers 200. Not started yet."""
    return Managed(name=name, argv=argv, log_path=log_dir / f"{name}.log", env=env, cwd=ROOT,
                   ready=lambda: http_ok(port, health), ready_timeout=60)  # fmt: skip


UNREFUSED = "1000000000/minute"  # a rate limit no benchmark reaches


@dataclasses.dataclass
class Services:
    """What every app under test shares: the database (already running), a redis-server, the demo data."""

    database_uri: str
    redis: Managed
    redis_port: int
    secret_key: str  # signs cursors: every app must have the same

    def env(self, *, workers: int, threads: int, **extra: str) -> dict[str, str]:
        """The environment of an app under test: this process's, pointed at the shared services."""
        return {**os.environ, "MONGODB_URI": self.database_uri, "REDIS_URL": f"redis://{HOST}:{self.redis_port}/0",
                "RESTENGINE_SECRET_KEY": self.secret_key, "RESTENGINE_DOCUMENTS": DEMO_MODULE,
                "RESTENGINE_WORKERS": str(workers), "RESTENGINE_THREADS": str(threads),
                # The limiter runs (its Redis round trip is part of the cost) and never refuses: one load
                # generator is one client, far past any real client's limit.
                "RESTENGINE_RATE_LIMIT": UNREFUSED, "RESTENGINE_WRITE_RATE_LIMIT": UNREFUSED, **extra}  # fmt: skip

    def stop(self) -> None:
        """Stop the redis-server (the database is the caller's)."""
        self.redis.stop()


class Harness:
    """What a focused benchmark runs on, in ``tmp`` (logs in ``tmp/log``): the embedded database, a
    redis-server and ``books`` demo books, then the apps it ``start``s on them.

    ``with Harness(tmp, books) as harness: harness.start([...])``: leaving the block stops the apps
    (last started first), Redis and the database, also on an error or Ctrl-C; from then on SIGINT and
    SIGTERM are ignored, so a second Ctrl-C cannot cut the clean-up short.
    """

    def __init__(self, tmp: Path, books: int) -> None:
        self.tmp, self.books, self.log_dir = tmp, books, tmp / "log"
        self.database = DatabaseServer(tmp / "data", free_port())
        self._services: Services | None = None
        self.apps: list[Managed] = []

    @property
    def services(self) -> Services:
        if self._services is None:
            raise RuntimeError("the harness is not started")
        return self._services

    def __enter__(self) -> Harness:
        try:
            self.database.start()
            self._services = start_services(self.database.uri, self.books, self.tmp, self.log_dir)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, apps: Sequence[Managed]) -> None:
        """Start ``apps`` and wait until each is ready (see ``start_all``); they stop with the harness."""
        start_all(apps)
        self.apps.extend(apps)

    def pids(self) -> dict[str, int | None]:
        """The PIDs of the shared services, for CPU readings: ``redis`` and ``db``."""
        db = self.database.process
        return {"redis": self.services.redis.pid, "db": db.pid if db is not None else None}

    def close(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        for proc in reversed(self.apps):
            proc.stop()
        self.apps.clear()
        if self._services is not None:
            self._services.stop()
            self._services = None
        self.database.stop()


def start_services(database_uri: str, books: int, tmp: Path, log_dir: Path) -> Services:
    """Start a redis-server (its files in ``tmp``, its log in ``log_dir``), then create the indexes and
    seed ``books`` demo books in the running database at ``database_uri``. The caller stops the
    result; on a failure here the redis-server is stopped before the error is re-raised."""
    port = free_port()
    redis = redis_process(shutil.which("redis-server") or "redis-server", port, tmp, log_dir)
    start_all([redis])
    try:
        overrides = {"MONGODB_URI": database_uri, "RESTENGINE_SEED_BOOKS": books, "RESTENGINE_DATA_DIR": str(tmp)}
        settings = local_secret(load_stack_settings(overrides, environ={}))
        prepare_database(settings, progress=False)
    except BaseException:
        redis.stop()
        raise
    return Services(database_uri, redis, port, settings.secret_key or "")


class FreshDatabase:
    """The database, restored from a seeded copy before every workload.

    SecantusDB executes queries one at a time and keeps executing those whose clients went away,
    so a 256-connection run of a slow workload leaves minutes of backlog; restarting it from the
    seeded data (same port: clients reconnect) gives every workload the same, idle database.
    Start it, seed it, ``seal`` it, then ``reset`` it before each use; ``close`` it at the end.
    """

    def __init__(self, tmp: Path, port: int) -> None:
        self.template = tmp / "db-template"
        self.server = DatabaseServer(tmp / "db", port)

    @property
    def process(self) -> Managed | None:
        """The running server's process; None before the first start and between ``seal`` and ``reset``."""
        return self.server.process

    def start(self) -> None:
        """Start the server on its empty data directory, for seeding."""
        self.server.start()

    def seal(self) -> None:
        """Stop the seeded server and keep its data as the template."""
        self.server.stop()
        shutil.copytree(self.server.data_dir, self.template)

    def close(self) -> None:
        """Kill the server: its data is thrown away, and a graceful stop waits for its backlog."""
        proc = self.server.process
        if proc is not None and proc.proc is not None:
            proc.proc.kill()
        self.server.stop()

    def reset(self) -> None:
        """Kill the server, restore the template's data and start it again on the same port."""
        self.close()
        shutil.rmtree(self.server.data_dir, ignore_errors=True)
        shutil.copytree(self.template, self.server.data_dir)
        self.server.start()
