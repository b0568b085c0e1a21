"""Prometheus metrics, added up over every gunicorn worker: requests, the MongoDB pool, commands, refusals.

``prometheus_client`` in its multiprocess mode: each worker writes its samples
to files in ``PROMETHEUS_MULTIPROC_DIR`` (gunicorn's configuration makes that
directory fresh at start-up and marks a worker that exits as dead), and
``GET /metrics`` in any worker reads them all. Without that directory (the
Flask test client, a single process) the samples are the process's own.

What is measured:

* ``http_server_request_duration_seconds`` (histogram; ``method``, ``route``
  — the URL rule such as ``/api/books/{id}``, never the raw path — and
  ``status``), named after OpenTelemetry's semantic conventions, and
  ``http_server_active_requests`` per worker process (``pid``): the requests
  in progress, which under gthread are the busy threads;
* the PyMongo pool of each worker process, from the driver's connection pool
  events: connections open, checked out and waited for (gauges by ``pid``),
  the wait for a connection (histogram), failed checkouts by reason,
  connections created and closed; database command durations by command;
* what the service refused or could not do: 503s for the database deadline,
  "query too expensive", requests shed by admission control, rate-limit
  refusals (and requests let through unchecked while the limiter's storage is
  away), authentication failures by kind; cache answers by ``X-Cache``.

``RESTENGINE_METRICS=off`` turns all of it off (nothing is measured, ``/metrics`` is not served).
"""

from __future__ import annotations

import ipaddress
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from pymongo import monitoring

from restengine import timing
from restengine.constants import CACHE_ANSWER

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
ROUTE = "restengine.rule"  # WSGI environ key: the URL rule Flask matched, for a request outside the API
SAMPLE_SECONDS = 0.25  # how often a worker writes its requests in progress and its cache answers to the files
UNMATCHED = "unmatched"
METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}
)  # the route of a request no URL rule matched (never its raw path)
# OpenTelemetry's recommended buckets for HTTP server durations, in seconds.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
WAIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

REQUEST_DURATION = Histogram(
    "http_server_request_duration_seconds",
    "Duration of HTTP server requests.",
    ("method", "route", "status"),
    buckets=DURATION_BUCKETS,
)
ACTIVE_REQUESTS = Gauge(
    "http_server_active_requests",
    "HTTP requests in progress in each worker process (under gthread: its busy threads).",
    multiprocess_mode="liveall",
)
POOL_OPEN = Gauge(
    "mongodb_pool_connections", "Connections the worker's MongoDB pool holds open.", multiprocess_mode="liveall"
)
POOL_CHECKED_OUT = Gauge(
    "mongodb_pool_checked_out", "Connections of the worker's pool in use by a request.", multiprocess_mode="liveall"
)
POOL_WAITERS = Gauge(
    "mongodb_pool_waiters",
    "Requests of the worker waiting for a connection from its pool.",
    multiprocess_mode="liveall",
)
POOL_WAIT = Histogram(
    "mongodb_pool_checkout_wait_seconds",
    "Time from asking the pool for a connection to getting one.",
    buckets=WAIT_BUCKETS,
)
POOL_FAILURES = Counter("mongodb_pool_checkout_failures", "Checkouts that failed, by reason.", ("reason",))
POOL_CREATED = Counter("mongodb_pool_connections_created", "Connections the pools opened.")
POOL_CLOSED = Counter("mongodb_pool_connections_closed", "Connections the pools closed.", ("reason",))
COMMAND_DURATION = Histogram(
    "mongodb_command_duration_seconds",
    "Duration of MongoDB commands, as the driver measured them.",
    ("command", "outcome"),
    buckets=DURATION_BUCKETS,
)
REFUSED = Counter(
    "restengine_refused_requests",
    "Requests answered with a refusal of the service's own: database_unavailable (503 past the deadline), "
    "query_too_expensive (422), shed (503, waited too long for a thread), rate_limited (429), "
    "too_many_expensive (429).",
    ("reason",),
)
UNCHECKED = Counter(
    "restengine_rate_limit_failed_open",
    "Requests let through without a rate-limit check because the limiter's storage (Redis) could not be reached.",
)
AUTH_FAILURES = Counter(
    "restengine_auth_failures", "Requests refused by the access check, by kind (401, 403).", ("kind",)
)
CACHE = Counter("restengine_cache_answers", "GETs of the API by what the cache did (X-Cache).", ("result",))
CACHE_LOCK_WAITS = Counter(
    "restengine_cache_lock_waits",
    "Misses that waited for another request building the same entry: filled (it came) or timed_out.",
    ("outcome",),
)
CACHE_INVALIDATIONS = Counter(
    "restengine_cache_invalidations",
    "Generation bumps after writes: sent to Redis, or owed (Redis away: sent again until it takes them).",
    ("result",),
)
CACHE_BREAKER_OPEN = Gauge(
    "restengine_cache_breaker_open",
    "1 while the worker's circuit breaker keeps Redis out of the cache's way, else 0.",
    multiprocess_mode="liveall",
)

_enabled = False


def enabled() -> bool:
    return _enabled


def enable() -> None:
    """Measure from now on (``create_app`` calls it unless ``RESTENGINE_METRICS=off``)."""
    global _enabled
    _enabled = True


def refused(reason: str) -> None:
    if _enabled:
        REFUSED.labels(reason).inc()


def unchecked() -> None:
    if _enabled:
        UNCHECKED.inc()


def cache_event(counter: Counter, label: str) -> None:
    if _enabled:
        counter.labels(label).inc()


def breaker(is_open: bool) -> None:
    if _enabled:
        CACHE_BREAKER_OPEN.set(1 if is_open else 0)


def auth_failure(kind: str) -> None:
    if _enabled:
        AUTH_FAILURES.labels(kind).inc()


def registry() -> CollectorRegistry:
    """What a scrape reads: every worker's samples in multiprocess mode, else this process's."""
    from prometheus_client import REGISTRY

    if not os.environ.get(MULTIPROC_DIR):
        return REGISTRY
    collected = CollectorRegistry()
    multiprocess.MultiProcessCollector(collected)  # type: ignore[no-untyped-call]
    return collected


def exposition() -> bytes:
    """The samples of every worker, in Prometheus's text format."""
    return generate_latest(registry())


class Requests:
    """WSGI layer, outermost: each request's duration by method, route and status, and those in progress.

    ``route_of`` names the route (``restengine.app.route_namer``: the API's
    template such as ``/api/books/{id}``, the URL rule Flask matched, else
    ``unmatched``): never a client's raw path, and a method outside HTTP's
    own is ``_OTHER`` (OpenTelemetry's convention), so a scan of random URLs
    or methods adds no series. The duration is written at once; the requests in progress and the
    cache's answers are counted in the process and written every
    :data:`SAMPLE_SECONDS` by a thread of the worker (a few microseconds less
    per request, which is a few percent of a cached GET).
    """

    def __init__(self, wsgi_app: WSGIApplication, route_of: Callable[[WSGIEnvironment], str]) -> None:
        self.wsgi_app = wsgi_app
        self.route_of = route_of
        self.active = 0
        self.cache: dict[str, int] = {}
        self._children: dict[tuple[str, str, str], Any] = {}
        self._lock = threading.Lock()
        self._sampler_pid = 0

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        seen: list[str] = []

        def recording(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seen.append(status[:3])
            return start_response(status, headers, exc_info)

        if self._sampler_pid != os.getpid():
            self._start_sampler()
        with self._lock:
            self.active += 1
        try:
            return self.wsgi_app(environ, recording)
        finally:
            answered = environ.get(CACHE_ANSWER)
            with self._lock:  # ``+=`` is not atomic across threads
                self.active -= 1
                if answered is not None:
                    self.cache[answered] = self.cache.get(answered, 0) + 1
            method = environ.get("REQUEST_METHOD", "")
            key = (method if method in METHODS else "_OTHER", self.route_of(environ), seen[0] if seen else "500")
            child = self._children.get(key)
            if child is None:
                with self._lock:
                    child = self._children[key] = REQUEST_DURATION.labels(*key)
            child.observe(time.perf_counter() - started)

    def _start_sampler(self) -> None:
        with self._lock:
            if self._sampler_pid == os.getpid():
                return
            self._sampler_pid = os.getpid()
            self.active, self.cache = 0, {}  # a forked worker starts from nothing
        threading.Thread(target=self._sample, name="restengine-metrics", daemon=True).start()
        _samplers.append(self)

    def _sample(self) -> None:
        while True:
            time.sleep(SAMPLE_SECONDS)
            self.flush()

    def flush(self) -> None:
        """Write the requests in progress and the cache answers counted since the last time."""
        with self._lock:
            active, counted, self.cache = self.active, self.cache, {}
        ACTIVE_REQUESTS.set(active)
        for result, n in counted.items():
            CACHE.labels(result).inc(n)


_samplers: list[Requests] = []


def flush() -> None:
    """Write what this process counted and has not written yet (gunicorn's ``worker_exit``)."""
    for sampler in _samplers:
        sampler.flush()


class PoolEvents(monitoring.ConnectionPoolListener):
    """The driver's connection pool events, as the pool metrics."""

    def pool_created(self, event: monitoring.PoolCreatedEvent) -> None:
        pass

    def pool_ready(self, event: monitoring.PoolReadyEvent) -> None:
        pass

    def pool_cleared(self, event: monitoring.PoolClearedEvent) -> None:
        pass

    def pool_closed(self, event: monitoring.PoolClosedEvent) -> None:
        pass

    def connection_created(self, event: monitoring.ConnectionCreatedEvent) -> None:
        POOL_OPEN.inc()
        POOL_CREATED.inc()

    def connection_ready(self, event: monitoring.ConnectionReadyEvent) -> None:
        pass

    def connection_closed(self, event: monitoring.ConnectionClosedEvent) -> None:
        POOL_OPEN.dec()
        POOL_CLOSED.labels(str(event.reason)).inc()

    def connection_check_out_started(self, event: monitoring.ConnectionCheckOutStartedEvent) -> None:
        POOL_WAITERS.inc()

    def connection_check_out_failed(self, event: monitoring.ConnectionCheckOutFailedEvent) -> None:
        POOL_WAITERS.dec()
        POOL_FAILURES.labels(str(event.reason)).inc()

    def connection_checked_out(self, event: monitoring.ConnectionCheckedOutEvent) -> None:
        POOL_WAITERS.dec()
        POOL_CHECKED_OUT.inc()
        POOL_WAIT.observe(event.duration or 0.0)

    def connection_checked_in(self, event: monitoring.ConnectionCheckedInEvent) -> None:
        POOL_CHECKED_OUT.dec()


class CommandEvents(monitoring.CommandListener):
    """The driver's command events, as command durations (no command or reply content is looked at)."""

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        seconds = event.duration_micros / 1e6
        timing.add_db(seconds)
        if _enabled:
            COMMAND_DURATION.labels(event.command_name, "success").observe(seconds)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        seconds = event.duration_micros / 1e6
        timing.add_db(seconds)
        if _enabled:
            COMMAND_DURATION.labels(event.command_name, "failure").observe(seconds)


_timed = False


def time_commands() -> None:
    """Time each request's database commands for ``Server-Timing`` (the command listener does it)."""
    global _timed
    _timed = True


def listeners() -> list[Any]:
    """The driver event listeners a MongoClient gets: the pool's with metrics, the commands' with metrics or
    ``Server-Timing`` (none with neither)."""
    found: list[Any] = [PoolEvents()] if _enabled else []
    if _enabled or _timed:
        found.append(CommandEvents())
    return found


def allowed(environ: WSGIEnvironment, networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    """Whether the request comes from one of ``networks`` (its client address as the trusted proxies gave it)."""
    try:
        address = ipaddress.ip_address(environ.get("REMOTE_ADDR") or "")
    except ValueError:
        return False
    return any(address in network for network in networks)


def blueprint(networks: Iterable[str], may_read: Callable[[WSGIEnvironment], bool] | None = None) -> Any:
    """The ``metrics`` blueprint: ``GET /metrics`` for clients from ``networks``, or that ``may_read`` admits
    (the access policy's ``read`` of ``metrics``); 403 problem+json for anyone else. Never cached."""
    from flask import Blueprint, Response, request

    from restengine.errors import Forbidden

    nets = [ipaddress.ip_network(n, strict=False) for n in networks]
    bp = Blueprint("metrics", __name__)

    def scrape() -> Response:
        environ = request.environ
        if not allowed(environ, nets) and not (may_read is not None and may_read(environ)):
            raise Forbidden("Metrics are for the operator's monitoring: not from this address or with these roles.")
        return Response(
            exposition(), mimetype=None, content_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"}
        )

    bp.add_url_rule("/metrics", "metrics", scrape, methods=["GET"])
    return bp
