"""``restengine up``: the whole local stack in the foreground.

Database (embedded unless ``MONGODB_URI``), redis-server (unless ``REDIS_URL``
or no redis-server installed), indexes and demo data on first run, N gunicorn
instances, ``restengine watch`` (with Redis only) and nginx in front of them.
A gunicorn instance or the watcher that dies is restarted; Ctrl-C or SIGTERM
stops every process this started, in reverse order, each by its PID.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from restengine import db
from restengine.config import DEMO_MODULE, ConfigError, check_secret
from restengine.ops.dbserver import HOST, DatabaseServer
from restengine.ops.processes import Managed, ProcessError, port_open, which
from restengine.ops.settings import StackSettings

log = logging.getLogger(__name__)

RESTARTS_PER_MINUTE = 5


# The gunicorn configuration the package ships (restengine/ops/gunicorn_conf.py), as gunicorn's --config takes it.
PACKAGED_GUNICORN_CONFIG = "python:restengine.ops.gunicorn_conf"


def gunicorn_config() -> str:
    """gunicorn's ``--config``: ``$RESTENGINE_GUNICORN_CONFIG``, else ./gunicorn.conf.py, else the packaged one.

    The packaged configuration is a module of the installed package, so it is
    found wherever the package is installed, with no source checkout.
    """
    configured = os.environ.get("RESTENGINE_GUNICORN_CONFIG", "")
    if configured.startswith("python:"):
        return configured
    for candidate in (configured, "gunicorn.conf.py"):
        if candidate and Path(candidate).is_file():
            return str(Path(candidate).resolve())
    return PACKAGED_GUNICORN_CONFIG


def local_secret(settings: StackSettings) -> StackSettings:
    """Settings with a secret key: ``RESTENGINE_SECRET_KEY``, else one kept in the data directory.

    The file is created once with a random value (43 characters, mode 0600) and
    reused, so every local instance and every restart signs cursors alike.
    Raises :class:`~restengine.config.ConfigError` naming the file when what it
    holds is shorter than 32 bytes (it was edited by hand).
    """
    if settings.secret_key:
        return settings
    import secrets

    path = settings.data_dir.resolve() / "secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32))
    secret = path.read_text().strip()
    check_secret(secret, str(path))
    return _with(settings, secret_key=secret)


def http_ok(port: int, path: str = "/healthz", timeout: float = 1.0) -> bool:
    """True when ``GET http://127.0.0.1:port/path`` answers 200."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def prepare_database(settings: StackSettings, *, progress: bool = True) -> None:
    """Apply RESTENGINE_INDEXES to the served classes, seed the demo data on its first run, and make the first
    admin key. Raises :class:`ConfigError` when an index is missing (``check``) or cannot be built."""
    from restengine.app import documents_served_by
    from restengine.ops.indexes import prepare_indexes
    from restengine.ops.seed import seed_demo

    classes = documents_served_by(settings)
    db.use(settings, timeout_ms=120_000)
    try:
        for line in prepare_indexes(classes, settings.indexes):
            print(line, flush=True)
        if DEMO_MODULE in settings.document_modules():
            written = seed_demo(books=settings.seed_books, progress=progress)
            if written:
                print(f"seeded {written} demo books", flush=True)
        if settings.auth == "on":
            first_admin_key()
    finally:
        db.close_all()


def first_admin_key() -> str | None:
    """On a database with no API key yet, create one with the ``admin`` role and print it, this once.

    Returns the key, or ``None`` when keys exist already (they are never shown again).
    """
    from restengine.auth.keys import COLLECTION, KeyStore

    collection = db.get_database()[COLLECTION]
    if collection.find_one({}, {"_id": 1}) is not None:
        return None
    info, key = KeyStore(lambda: collection).create("admin", name="created by restengine up")
    print(
        f"An API key with the admin role was created ({info.id}); it is shown only this once, keep it:\n{key}",
        flush=True,
    )
    return key


def redis_process(executable: str, port: int, run_dir: Path, log_dir: Path) -> Managed:
    """A redis-server on 127.0.0.1:``port`` used as a cache: bounded, LRU, nothing persisted."""
    return Managed(
        name="redis",
        argv=[executable, "--bind", HOST, "--port", str(port), "--save", "", "--appendonly", "no",
              "--dir", str(run_dir), "--maxmemory", "256mb", "--maxmemory-policy", "allkeys-lru"],
        log_path=log_dir / "redis.log",
        ready=lambda: port_open(HOST, port),
    )  # fmt: skip


def gunicorn_process(name: str, port: int, env: dict[str, str], log_dir: Path, *, bind_host: str = HOST) -> Managed:
    """One gunicorn instance on ``bind_host:port`` with RestEngine's gunicorn configuration."""
    argv = [sys.executable, "-m", "gunicorn", "--config", gunicorn_config(), "--bind", f"{bind_host}:{port}"]
    return Managed(
        name=name,
        argv=argv,
        log_path=log_dir / f"{name}.log",
        ready=lambda: http_ok(port),
        env={**env, "RESTENGINE_PROC_NAME": name},
        ready_timeout=60.0,
        stop_timeout=40.0,  # gunicorn's graceful_timeout is 30s
    )


def watcher_process(env: dict[str, str], log_dir: Path) -> Managed:
    """``restengine watch``: invalidates cached reads for writes that bypass the API."""
    return Managed(
        name="restengine-watch",
        argv=[sys.executable, "-m", "restengine.ops.cli", "watch"],
        log_path=log_dir / "restengine-watch.log",
        ready=lambda: True,
        env=env,
        stop_timeout=10.0,
    )


class Stack:
    """The processes of ``restengine up``, started in dependency order."""

    def __init__(self, settings: StackSettings, *, progress: bool = True) -> None:
        self.settings = settings = local_secret(settings)
        self.progress = progress
        self.data_dir = settings.data_dir.resolve()
        self.run_dir = self.data_dir / "run"
        self.log_dir = self.data_dir / "log"
        self.database: DatabaseServer | None = None
        self.redis: Managed | None = None
        self.instances: list[Managed] = []
        self.watcher: Managed | None = None  # only with Redis: there is no shared cache to invalidate otherwise
        self.nginx: Managed | None = None
        self._restarts: list[float] = []
        self._stop = threading.Event()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.settings.http_port}/"

    def _start_redis(self) -> str | None:
        if self.settings.redis_url:
            return self.settings.redis_url
        server = which("redis-server")
        port = self.settings.redis_port
        if server is None:
            log.warning("redis-server not found and REDIS_URL unset: running without Redis (per-process cache)")
            return None
        if port_open(HOST, port):
            raise ProcessError(f"RESTENGINE_REDIS_PORT: port {port} is already in use")
        self.redis = redis_process(server, port, self.run_dir, self.log_dir)
        self.redis.start()
        self.redis.wait_ready()
        return f"redis://{HOST}:{port}/0"

    def _start_nginx(self) -> None:
        from restengine.ops import nginx

        executable = which("nginx", [Path("/usr/sbin")])
        if executable is None:
            raise ProcessError("nginx not found: install it (apt-get install nginx-light)")
        port = self.settings.http_port
        if port_open(HOST, port):
            raise ProcessError(f"RESTENGINE_HTTP_PORT: port {port} is already in use")
        nginx_run = self.run_dir / "nginx"
        conf = nginx.write_config(
            nginx_run / "nginx.conf",
            listen=f"{HOST}:{port}",
            upstreams=[f"{HOST}:{p}" for p in self.settings.instance_ports],
            server_names=["localhost", HOST],
            run_dir=nginx_run,
            access_log=str(self.log_dir / "nginx-access.log"),
            error_log=str(self.log_dir / "nginx-error.log"),
        )
        self.nginx = Managed(
            name="nginx",
            argv=[executable, "-c", str(conf), "-p", str(nginx_run), "-g", "daemon off;"],
            log_path=self.log_dir / "nginx.log",
            ready=lambda: port_open(HOST, port),
            stop_signal=signal.SIGQUIT,
        )
        self.nginx.start()
        self.nginx.wait_ready()

    def start(self) -> None:
        """Start everything; on any failure, stop what was started and re-raise."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        settings = self.settings
        for port in settings.instance_ports:
            if port_open(HOST, port):
                raise ProcessError(f"RESTENGINE_INSTANCE_PORTS: port {port} is already in use")
        uri = settings.mongodb_uri
        if uri is None:
            self.database = DatabaseServer(self.data_dir, settings.db_port)
            self.database.start()
            uri = self.database.uri
        redis_url = self._start_redis()
        settings_for_prepare = _with(settings, mongodb_uri=uri)
        prepare_database(settings_for_prepare, progress=self.progress)

        env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL"}}
        env.update(
            MONGODB_URI=uri,
            RESTENGINE_DOCUMENTS=",".join(settings.documents),
            RESTENGINE_APP=settings.app or "",
            RESTENGINE_PROXY_COUNT="1",  # exactly one proxy in front: nginx
            RESTENGINE_SECRET_KEY=settings.secret_key or "",
        )
        if redis_url:
            env["REDIS_URL"] = redis_url
        for index, port in enumerate(settings.instance_ports, start=1):
            instance = gunicorn_process(f"restengine-{index}", port, env, self.log_dir)
            self.instances.append(instance)
            instance.start()
        for instance in self.instances:
            instance.wait_ready()
        if redis_url:
            self.watcher = watcher_process(env, self.log_dir)
            self.watcher.start()
        self._start_nginx()
        self._write_pids()

    def _write_pids(self) -> None:
        pids = {
            p.name: p.pid
            for p in [
                self.database.process if self.database else None,
                self.redis,
                *self.instances,
                self.watcher,
                self.nginx,
            ]
            if p is not None and p.pid is not None
        }
        (self.run_dir / "pids.json").write_text(json.dumps(pids, indent=2) + "\n")

    def supervise(self) -> None:
        """Block until asked to stop; restart any process of the stack that dies.

        A restarted Redis comes back empty, which is safe: its entries went with
        the generations that guarded them.
        """
        while not self._stop.wait(0.5):
            database = self.database.process if self.database else None
            for proc in (database, self.redis, *self.instances, self.watcher, self.nginx):
                if proc is not None and not proc.alive():
                    self._restart(proc)

    def _restart(self, instance: Managed) -> None:
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < 60] + [now]
        if len(self._restarts) > RESTARTS_PER_MINUTE:
            raise ProcessError(f"processes of the stack died {len(self._restarts)} times in a minute; giving up")
        log.warning("%s exited with status %s; restarting it", instance.name, instance.returncode())
        instance.stop()  # reap it and kill workers it orphaned
        instance.start()
        self._write_pids()

    def request_stop(self, *_: object) -> None:
        self._stop.set()

    def stop(self) -> None:
        """Stop every process this stack started, front to back, each by its PID."""
        for proc in [self.nginx, self.watcher, *reversed(self.instances), self.redis]:
            if proc is not None:
                proc.stop()
        if self.database is not None:
            self.database.stop()
        pids = self.run_dir / "pids.json"
        pids.unlink(missing_ok=True)


def _with(settings: StackSettings, **changes: object) -> StackSettings:
    import dataclasses

    return dataclasses.replace(settings, **changes)  # type: ignore[arg-type]


def run_stack(settings: StackSettings, *, progress: bool = True) -> int:
    """Run the stack until SIGINT/SIGTERM; returns the exit status."""
    stack = Stack(settings, progress=progress)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    status = 0
    try:
        # A signal during start-up interrupts it at once; stop() still runs below.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _raise_interrupt)
        stack.start()
        signal.signal(signal.SIGINT, stack.request_stop)
        signal.signal(signal.SIGTERM, stack.request_stop)
        print(f"RestEngine is up: {stack.url}  (Ctrl-C stops it)", flush=True)
        stack.supervise()
    except KeyboardInterrupt:
        pass
    except ProcessError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        status = 1
    except ConfigError as exc:
        print(f"error: invalid configuration: {exc}", file=sys.stderr, flush=True)
        status = 2
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("RestEngine stopped.", flush=True)
    return status


def _raise_interrupt(*_: object) -> None:
    raise KeyboardInterrupt
