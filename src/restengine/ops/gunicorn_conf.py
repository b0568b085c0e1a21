"""gunicorn settings for RestEngine: plain settings, then the hooks.

Shipped in the package, so it works wherever RestEngine is installed::

    gunicorn --config python:restengine.ops.gunicorn_conf

(the repository's ``gunicorn.conf.py`` loads this module). Every value can be
set from the environment (see the README's configuration tables); gunicorn's
own command-line flags override this module.

Nothing here imports the app or the MongoDB driver before the worker class is
settled: with RESTENGINE_WORKER_CLASS=gevent the process is monkey-patched
first, so PyMongo and redis-py only ever see cooperative sockets. Importing
this module imports only ``restengine/__init__.py`` and ``restengine/ops/__init__.py``
first, and both import nothing heavy.
"""

import os
from typing import Any

worker_class = os.environ.get("RESTENGINE_WORKER_CLASS", "gthread").strip().lower() or "gthread"
if worker_class == "gevent":
    from gevent import monkey

    monkey.patch_all()
elif worker_class != "gthread":
    raise SystemExit(f"RESTENGINE_WORKER_CLASS: expected gthread or gevent, got {worker_class!r}")


def _env_int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"{name}: expected an integer, got {raw!r}") from None
    if value < minimum:
        raise SystemExit(f"{name}: must be >= {minimum}, got {value}")
    return value


_cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

wsgi_app = "restengine.wsgi:app"
bind = [os.environ.get("RESTENGINE_BIND", "127.0.0.1:8000")]
proc_name = os.environ.get("RESTENGINE_PROC_NAME", "restengine")

# Processes give parallelism (one GIL each), threads overlap database waits.
workers = _env_int("RESTENGINE_WORKERS", _env_int("WEB_CONCURRENCY", max(2, _cpus)))
threads = _env_int("RESTENGINE_THREADS", 8)
# Open connections per worker. gthread: gunicorn's default, so every client gets a turn at the thread pool
# (with 100, two workers held 200 of 256 clients and the others waited in the listen backlog, some past wrk's
# 2 s timeout). gevent: one greenlet per connection, and the PyMongo pool is sized from it, so fewer.
worker_connections = _env_int("RESTENGINE_WORKER_CONNECTIONS", 100 if worker_class == "gevent" else 1000)

# The app sizes its PyMongo pool from the requests one worker can run at once.
os.environ["RESTENGINE_THREADS"] = str(worker_connections if worker_class == "gevent" else threads)
# gthread, with the wait of each request for a thread recorded for the app's admission control
# (RESTENGINE_QUEUE_BUDGET_MS, restengine.admission).
if worker_class == "gthread":
    worker_class = "restengine.ops.worker.ThreadWorker"
# Prometheus's multiprocess mode (restengine.metrics): every worker writes its samples to files in one
# directory, which must be set before the app (and prometheus_client) is imported, and fresh at start-up.
_metrics = os.environ.get("RESTENGINE_METRICS", "on").strip().lower() != "off"
_metrics_dir_ours = False
if _metrics and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="restengine-metrics-")
    _metrics_dir_ours = True
# Traces (restengine.tracing): the workers start their exporters after the fork, not the app in the master.
os.environ["RESTENGINE_UNDER_GUNICORN"] = "1"
# Without Redis, a per-process response cache is only safe in a single worker (restengine.cache).
os.environ["RESTENGINE_WORKER_PROCESSES"] = str(workers)


def _env_flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
        raise SystemExit(f"{name}: expected on or off, got {raw!r}")
    return raw in {"1", "true", "yes", "on"}


# The app is built once, in the master, and forked: a worker serves at once, and one that gunicorn replaces
# starts serving without importing Flask, MongoEngine and the models again. Fork-safe: no client exists
# before the fork (restengine.db), and post_fork drops any a legacy app opened while importing.
preload_app = _env_flag("RESTENGINE_PRELOAD", True)

# Forwarded headers are trusted exactly as the app trusts them (RESTENGINE_PROXY_COUNT, werkzeug's
# ProxyFix, which sets the scheme, host and client address). With no proxy in front, gunicorn must not
# turn a client's X-Forwarded-Proto into https either: it trusts no address (by default it trusts
# 127.0.0.1, and any UNIX socket peer) and reads no scheme header. Behind proxies, the app's ProxyFix
# trusts the nearest hops whatever their address (nginx in docker-compose is not 127.0.0.1), so gunicorn
# trusts any address too, but reads only X-Forwarded-Proto, the one scheme header the bundled nginx
# overwrites: X-Forwarded-Ssl or X-Forwarded-Protocol from a client are passed on by nginx untouched.
_proxy_count = _env_int("RESTENGINE_PROXY_COUNT", 0, minimum=0)
forwarded_allow_ips = "*" if _proxy_count else ""
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"} if _proxy_count else {}

# Longer than nginx's upstream keepalive_timeout (60s in restengine/ops/nginx.conf.template),
# so gunicorn never closes a kept-alive connection nginx is about to reuse.
keepalive = 75
timeout = 30
graceful_timeout = 30
# No recycling unless asked: each recycled worker is a worker not serving (and, without preload, a full
# re-import). Against a slow leak, set RESTENGINE_MAX_REQUESTS (a jitter of a tenth is added).
max_requests = _env_int("RESTENGINE_MAX_REQUESTS", 0, minimum=0)
max_requests_jitter = _env_int("RESTENGINE_MAX_REQUESTS_JITTER", max_requests // 10, minimum=0)
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None

# gunicorn's control socket defaults to one path per user, which two instances
# on one host would fight over: off unless a path is given.
control_socket = os.environ.get("RESTENGINE_CONTROL_SOCKET", "") or None
control_socket_disable = control_socket is None

# nginx, in front of every deployment shipped (up, docker-compose), logs each request with its request id
# and timings; a second access log here costs every request a few percent. RESTENGINE_ACCESS_LOG=on adds it.
accesslog = "-" if _env_flag("RESTENGINE_ACCESS_LOG", False) else None
errorlog = "-"
loglevel = os.environ.get("RESTENGINE_LOG_LEVEL", "info")
# RESTENGINE_LOG_FORMAT=json: every line a JSON object (restengine.logs); the access log is then the app's,
# with fields (gunicorn's is one formatted string).
_log_format = os.environ.get("RESTENGINE_LOG_FORMAT", "text").strip().lower() or "text"
if _log_format not in ("text", "json"):
    raise SystemExit(f"RESTENGINE_LOG_FORMAT: expected text or json, got {_log_format!r}")
if _log_format == "json":
    from restengine.logs import gunicorn_logconfig

    logconfig_dict = gunicorn_logconfig(loglevel)
    accesslog = None
# %(M)s: request time in milliseconds; the request id is the one the app sent back.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms pid=%(p)s rid=%({x-request-id}o)s'


def on_starting(server: Any) -> None:
    """Before any worker: refuse to start on invalid settings (a one-line reason naming the setting), and
    make the declared indexes exist as ``RESTENGINE_INDEXES`` says — once, in a process of its own, so the
    master never holds a database client it would hand to the workers it forks."""
    import subprocess
    import sys

    from restengine.config import ConfigError, load_settings, require_secret

    _fresh_metrics_dir()

    try:
        settings = load_settings()
        require_secret(settings)
    except ConfigError as exc:
        server.log.error("invalid configuration: %s", exc)
        raise SystemExit(2) from None
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}  # it serves no request
    done = subprocess.run(
        [sys.executable, "-m", "restengine.ops.indexes"], capture_output=True, text=True, check=False, env=env
    )
    report = server.log.warning if settings.indexes == "off" else server.log.info
    for line in done.stdout.splitlines():
        report(line)
    if done.returncode:
        for line in done.stderr.strip().splitlines()[-5:]:
            server.log.error(line)
        raise SystemExit(2)


def _fresh_metrics_dir() -> None:
    """Empty the metrics directory: samples of an earlier run (same directory, given) must not add up."""
    import glob

    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if _metrics and directory:
        os.makedirs(directory, exist_ok=True)
        for path in glob.glob(os.path.join(directory, "*.db")):
            os.remove(path)


def when_ready(server: Any) -> None:
    """Listening, workers not forked yet: the master serves no request, so none of its gauges is live (a
    preloaded app made them, with the master's pid)."""
    if _metrics and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def child_exit(server: Any, worker: Any) -> None:
    """A worker is gone: its live gauges (in progress, pool) stop counting; its counters and histograms stay."""
    if _metrics and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    """The master leaves: remove the metrics directory it made."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if _metrics_dir_ours and directory:
        import shutil

        shutil.rmtree(directory, ignore_errors=True)


def post_fork(server: Any, worker: Any) -> None:
    """A new worker: drop any MongoDB client inherited from the master (one client per process); with
    OpenTelemetry's variables set, start its own tracer provider (its exporter thread does not survive a fork)."""
    from restengine import db, tracing

    db.after_fork()
    if tracing.wanted():
        tracing.start()


def worker_exit(server: Any, worker: Any) -> None:
    """A worker is leaving: write the metrics it counted and has not written yet; close its MongoDB client."""
    from restengine import db, metrics

    metrics.flush()
    db.close_all()


def pre_request(worker: Any, req: Any) -> None:
    """A request announcing a body too large to drain: close its connection after the answer.

    The app refuses an oversized body (413) and reads it away to keep the
    connection usable (``restengine.errors.drain_body``), but not past
    ``DRAIN_LIMIT``: the rest would be read as the next request.
    """
    from restengine.constants import DRAIN_LIMIT

    length = next((value for name, value in req.headers if name == "CONTENT-LENGTH"), "")
    if length and (not length.isdigit() or int(length) > DRAIN_LIMIT):
        req.force_close()
