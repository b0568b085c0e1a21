"""Rate limits shared by every worker and instance, checked before anything else can answer a request.

Each caller of the API's resources has a budget of requests per window: an
API key's, a JWT subject's, or (anonymous, or with credentials that are not
valid) the client address's, as ``ProxyFix`` established it from the trusted
proxies (never a header a client could set). Reads and writes are counted
apart, against ``RESTENGINE_RATE_LIMIT`` and ``RESTENGINE_WRITE_RATE_LIMIT``
unless the access policy sets other limits for the caller (see
:mod:`restengine.auth.policy`).

The counting is the ``limits`` library's fixed window (the engine of
Flask-Limiter, used directly because the check runs in a WSGI layer in front
of the cache's fast path, where no Flask extension sees the request): an
atomic increment in Redis, the window starting at the first request of a
caller. A round trip to Redis for every request would cost a cached GET
about half its throughput, so a caller far from its limit (half of it left,
and at least :data:`ASYNC_FLOOR`) is counted in the process at once and its
requests are sent to Redis together a few milliseconds later by a
background thread; near the limit, or when the process has not heard Redis's
count in the last :data:`FRESH` seconds, each request waits for Redis's own
count, so the limit itself is exact. Without Redis the counts are the
process's own (a warning says that the limit then applies per worker).

Every answer the layer lets through carries the ``RateLimit-Policy`` and
``RateLimit`` fields of the IETF httpapi draft (``"read";q=600;w=60`` and
``"read";r=599;t=60``); past the limit the answer is ``429`` problem+json
with ``Retry-After``. When Redis cannot be reached the limiter fails open:
requests go on unlimited (and without those fields), a warning is logged once
per outage, :attr:`Limiter.failed_open` counts them, and Redis is not tried
again for :data:`RETRY_SECONDS`, so an outage adds no latency.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING, Any

import redis
from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisClusterStorage, RedisSentinelStorage, RedisStorage, Storage
from redis.exceptions import RedisClusterException

from restengine import metrics, redisconn, redisurl
from restengine.api.routes import route_in
from restengine.auth.policy import Policy
from restengine.auth.principal import ANONYMOUS, Principal, caller_of
from restengine.errors import Problem, refuse

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from restengine.config import Settings

log = logging.getLogger(__name__)

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
RETRY_SECONDS = 2.0  # after a failure to reach Redis, how long requests go on unchecked before it is tried again
KEY_PREFIX = "re:rl"
EXTENSION = "restengine.ratelimit"  # app.extensions key of the app's Limiter (None: nothing is limited)
WINDOWS = 10_000  # windows remembered per process (one per caller and quota met); the ended ones are dropped
ASYNC_FLOOR = 50  # a request is counted ahead of the storage only while this many (and half the limit) are left
FRESH = 0.1  # seconds: ... and only while this process heard the storage's count that recently
EDGE = 0.05  # seconds: ... and not this close to the end of the window
SEND_INTERVAL = 0.005  # seconds between two sendings of what was counted ahead


@dataclasses.dataclass(frozen=True)
class Quota:
    """One budget: its name in the ``RateLimit`` fields and its rate (``None``: unlimited)."""

    name: str
    rate: RateLimitItem | None

    @property
    def policy_field(self) -> str:
        assert self.rate is not None
        return f'"{self.name}";q={self.rate.amount};w={self.rate.get_expiry()}'


@dataclasses.dataclass
class _Window:
    """What this process knows of one caller's window: when it ends (epoch seconds), the storage's count when
    last heard (monotonic ``heard``), and the requests counted here since: ``pending`` (not sent yet) and
    ``sending`` (sent, the answer awaited)."""

    ends: float
    known: int
    heard: float
    expiry: int
    pending: int = 0
    sending: int = 0


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What one request's hit left of its quota."""

    quota: Quota
    allowed: bool
    remaining: int
    reset: int  # seconds until the window ends

    def refusal(self, what: str, advice: str = "") -> Problem:
        """The 429 of a request past its quota (counted as refused): ``what`` was exceeded, then when to retry."""
        metrics.refused("rate_limited")
        retry = str(max(1, self.reset))
        return Problem(
            f"{what}; retry in {retry} s{advice}.",
            status=429,
            title="Too many requests",
            type="urn:restengine:problem:rate-limited",
            headers={"Retry-After": retry},
        )

    def headers(self) -> list[tuple[str, str]]:
        return [
            ("RateLimit-Policy", self.quota.policy_field),
            ("RateLimit", f'"{self.quota.name}";r={self.remaining};t={self.reset}'),
        ]


def rate(text: str | None) -> RateLimitItem | None:
    """A rate as settings and the policy hold it (``600/minute``; ``off`` or ``None``: unlimited)."""
    return None if text is None or text == "off" else parse(text)


def storage_for(settings: Settings) -> tuple[Storage, bool]:
    """Where counts are kept, and whether every worker shares it: Redis with ``REDIS_URL``, else this process.

    A ``redis+sentinel://`` or ``redis+cluster://`` URL is handed to ``limits`` as its parts (sentinels, service,
    database, credentials), not as the URL: ``limits`` would read ``/mymaster/0`` as the service ``mymaster0``.
    Counts are read from the master only (a replica's could lag behind the limit). Nothing connects here.
    """
    if not settings.redis_url:
        return MemoryStorage(), False
    timeout = settings.redis_timeout_ms / 1000
    sockets: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    target = redisurl.parse(settings.redis_url)
    if target.kind == "sentinel":
        options, sentinel_kwargs = redisconn.sentinel_options(target, timeout)  # the cache's, so both fail alike
        storage: Storage = RedisSentinelStorage(
            f"{redisurl.SENTINEL}://{target.locations()}",
            service_name=target.service,
            use_replicas=False,
            sentinel_kwargs=sentinel_kwargs,
            key_prefix=KEY_PREFIX,
            db=target.db,
            **options,
        )
    elif target.kind == "cluster":
        storage = _LazyClusterStorage(f"{redisurl.CLUSTER}://{target.locations()}", key_prefix=KEY_PREFIX,
                                      **sockets, **target.auth())  # fmt: skip
    else:
        storage = RedisStorage(settings.redis_url, key_prefix=KEY_PREFIX, health_check_interval=30, **sockets)
    return storage, True


class _LazyClusterStorage(RedisClusterStorage):
    """``limits``' Redis Cluster storage, connecting on first use, not when made.

    ``RedisCluster`` asks a node for the slot map as it is made, and the app is made before gunicorn forks (and
    must start while Redis is down); an unreachable Cluster is raised as ``redis.ConnectionError``, which the
    limiter treats like any Redis outage (it fails open), and the next use tries again.
    """

    def __init__(self, uri: str, key_prefix: str, **options: Any) -> None:
        Storage.__init__(self, uri)
        self._uri, self._options, self.key_prefix = uri, options, key_prefix
        self.target_server, self.dependency, self.storage = "redis", redis, None
        self._building = threading.Lock()

    def get_connection(self, readonly: bool = False) -> Any:
        if self.storage is None:
            with self._building:
                if self.storage is None:
                    try:
                        RedisClusterStorage.__init__(self, self._uri, key_prefix=self.key_prefix, **self._options)
                    except RedisClusterException as exc:
                        self.storage = None
                        raise redis.ConnectionError(f"Redis Cluster unreachable: {exc}") from exc
        return self.storage

    def __getattr__(self, name: str) -> Any:
        """The scripts ``limits`` registers once connected (``lua_incr_expire`` ...): connect, then give them."""
        if not name.startswith("lua_"):
            raise AttributeError(name)
        self.get_connection()
        return object.__getattribute__(self, name)


class Limiter:
    """Counts requests against quotas; :meth:`hit` is the one call a request makes.

    ``policy`` (the access policy) may override the defaults per role and
    resource; ``clock`` (epoch seconds) is for tests.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        read: str | None,
        write: str | None,
        expensive: str | None = None,
        policy: Policy | None = None,
        shared: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.storage = storage
        self.defaults = {False: Quota("read", rate(read)), True: Quota("write", rate(write))}
        self.expensive = Quota("expensive", rate(expensive))  # counted by the views, for expensive reads only
        self.policy = policy
        self.clock = clock
        self.failed_open = 0  # requests let through unchecked because the counts could not be reached
        self._down_until = 0.0
        self.batched = shared  # counts ahead of a shared storage (a process's own needs no round trip)
        self._quotas: dict[tuple[Any, ...], Quota] = {}
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._sender_pid = 0
        theirs: Any = storage.base_exceptions  # a class or a tuple of them
        self._errors: tuple[type[BaseException], ...] = (
            StorageError,
            *(theirs if isinstance(theirs, tuple) else (theirs,)),
        )

    @property
    def enabled(self) -> bool:
        """Whether any request can be limited (some default, or the policy, sets a rate)."""
        return any(q.rate is not None for q in (*self.defaults.values(), self.expensive)) or (
            self.policy is not None and _policy_sets_limits(self.policy)
        )

    def quota(self, principal: Principal, resource: str, write: bool) -> Quota:
        """The budget a request of ``principal`` to ``resource`` counts against."""
        cache_key = (principal.anonymous, principal.roles, resource, write)
        found = self._quotas.get(cache_key)
        if found is None:
            found = self._quotas[cache_key] = self._resolve(principal, resource, write)
        return found

    def _resolve(self, principal: Principal, resource: str, write: bool) -> Quota:
        default = self.defaults[write]
        if self.policy is None:
            return default
        kind = default.name
        found = self.policy.limits(principal, resource, "write_rate_limit" if write else "rate_limit")
        if not found:
            return default
        # The most generous of the caller's roles; unlimited beats any rate.
        scope, best = max(((s, rate(r)) for s, r in found), key=lambda sr: _per_second(sr[1]))
        return Quota(kind if scope == "*" else f"{resource}.{kind}", best)

    def hit(self, quota: Quota, caller: str) -> Verdict | None:
        """Count one request of ``caller`` against ``quota``; ``None`` when it cannot be counted (failing open).

        Far from its limit (see :data:`ASYNC_FLOOR`), a caller's request is counted in this process and sent
        to the shared storage by a background thread a few milliseconds later, with the others counted
        meanwhile; near it, or when this process has not heard the storage's count lately, the request waits
        for the storage's own answer, so the limit itself is exact.
        """
        item = quota.rate
        if item is None:
            return None
        if self._down_until and time.monotonic() < self._down_until:
            self.failed_open += 1
            metrics.unchecked()
            return None
        key = item.key_for(quota.name, caller)
        if self.batched:
            early = self._early(quota, key)
            if early is not None:
                return early
        return self._counted(quota, key)

    def _early(self, quota: Quota, key: str) -> Verdict | None:
        """The verdict of a request counted here for now (sent later), or ``None``: ask the storage."""
        item = quota.rate
        assert item is not None
        now = self.clock()
        with self._lock:
            window = self._windows.get(key)
            if window is None or window.ends <= now + EDGE or time.monotonic() - window.heard > FRESH:
                return None
            used = window.known + window.sending + window.pending + 1
            if item.amount - used < max(item.amount // 2, ASYNC_FLOOR):
                return None
            window.pending += 1
            if window.pending == 1:
                self._wake.set()
        self._ensure_sender()
        return Verdict(quota, True, item.amount - used, max(0, math.ceil(window.ends - now)))

    def _counted(self, quota: Quota, key: str) -> Verdict | None:
        """Count the request (and what this process counted for ``key`` meanwhile) in the storage, and wait."""
        item = quota.rate
        assert item is not None
        expiry = item.get_expiry()
        with self._lock:
            window = self._windows.get(key)
            taken = window.pending if window is not None else 0
            if window is not None:
                window.pending, window.sending = 0, window.sending + taken
        try:
            count, ends = self._send(key, expiry, 1 + taken)
        except self._errors as exc:
            self._settle(key, taken, None, expiry)
            self._failed(exc)
            return None
        now = self.clock()
        self._settle(key, taken, (count, ends), expiry)
        if self._down_until:
            self._down_until = 0.0
            log.warning("rate limits are counted again: the rate limit storage answers")
        return Verdict(quota, count <= item.amount, max(0, item.amount - count), max(0, math.ceil(ends - now)))

    def _send(self, key: str, expiry: int, amount: int) -> tuple[int, float]:
        """Add ``amount`` to ``key``'s count in the storage: the new count, and when its window ends (epoch s)."""
        count = self.storage.incr(key, expiry, amount=amount)
        now = self.clock()
        if count == amount:  # this call opened the window (the storage set its expiry)
            return count, now + expiry
        with self._lock:
            window = self._windows.get(key)
            ends = window.ends if window is not None else 0.0
        if ends <= now:
            ends = self.storage.get_expiry(key)
        return count, ends

    def _settle(self, key: str, sent: int, answer: tuple[int, float] | None, expiry: int) -> None:
        """Record the storage's ``answer`` (count, window end) to ``sent`` increments of ``key``; ``None``: lost."""
        with self._lock:
            window = self._windows.get(key)
            if window is not None:
                window.sending -= sent
            if answer is None:
                return
            count, ends = answer
            if window is None:
                if len(self._windows) >= WINDOWS:
                    self._forget_ended()
                self._windows[key] = _Window(ends=ends, known=count, heard=time.monotonic(), expiry=expiry)
            elif ends > window.ends + EDGE:  # a new window: what was counted here since is in it
                window.ends, window.known, window.heard = ends, count, time.monotonic()
            else:
                window.known = max(window.known, count)  # answers may arrive out of order
                window.heard = time.monotonic()

    def _forget_ended(self) -> None:
        """Drop the windows that ended with nothing left to send (under the lock); if none did, every window
        with nothing left to send (a caller forgotten here asks the storage on its next request)."""
        now = self.clock()
        idle = [k for k, w in self._windows.items() if not (w.pending or w.sending)]
        ended = [k for k in idle if self._windows[k].ends <= now]
        for key in ended or idle:
            del self._windows[key]

    def _ensure_sender(self) -> None:
        """Start this process's sender thread (once per process: a forked worker starts its own)."""
        if self._sender_pid == os.getpid():
            return
        with self._lock:
            if self._sender_pid == os.getpid():
                return
            self._sender_pid = os.getpid()
        threading.Thread(target=self._send_loop, name="restengine-ratelimit", daemon=True).start()

    def _send_loop(self) -> None:
        """Send what was counted here, every :data:`SEND_INTERVAL` while there is some, forever."""
        while True:
            self._wake.wait()
            time.sleep(SEND_INTERVAL)
            with self._lock:
                self._wake.clear()
                batch = [(key, w.pending, w.expiry) for key, w in self._windows.items() if w.pending]
                for key, amount, _ in batch:
                    window = self._windows[key]
                    window.pending, window.sending = 0, window.sending + amount
            for key, amount, expiry in batch:
                try:
                    answer: tuple[int, float] | None = self._send(key, expiry, amount)
                except self._errors as exc:
                    answer = None
                    self._failed(exc)
                self._settle(key, amount, answer, expiry)

    def _failed(self, exc: BaseException) -> None:
        self.failed_open += 1
        metrics.unchecked()
        with self._lock:
            first = not self._down_until
            self._down_until = time.monotonic() + RETRY_SECONDS
        if first:
            log.warning(
                "rate limits are not enforced: the rate limit storage cannot be reached (%s: %s); failing open, "
                "retrying every %.0fs",
                type(exc).__name__,
                exc,
                RETRY_SECONDS,
            )


def _per_second(item: RateLimitItem | None) -> float:
    return math.inf if item is None else item.amount / item.get_expiry()


def _policy_sets_limits(policy: Policy) -> bool:
    sections = [policy.anonymous, *policy.roles.values()]
    return any(rule.rate_limit or rule.write_rate_limit for section in sections for rule in section.values())


class RateLimits:
    """WSGI layer: every request for an API resource is counted, and refused past its caller's limit.

    ``principal`` establishes the caller (the access check's, remembered in the environ for it;
    credentials that are not valid count as the client's address, and are refused afterwards).
    """

    def __init__(
        self,
        wsgi_app: WSGIApplication,
        limiter: Limiter,
        resources: Collection[str],
        url_prefix: str,
        principal: Callable[[WSGIEnvironment], Principal] | None = None,
        other: Callable[[WSGIEnvironment], tuple[str, bool] | None] | None = None,
    ) -> None:
        """``other``: for a request outside the resource URLs that counts too (the Data API's actions), the
        resource its limits are looked up for (``*``: the caller's roles' own) and whether it writes."""
        self.wsgi_app = wsgi_app
        self.limiter = limiter
        self.resources = resources
        self.prefix = url_prefix
        self.principal = principal
        self.other = other

    def _counted(self, environ: WSGIEnvironment) -> tuple[str, bool] | None:
        route = route_in(environ, self.prefix)
        if route is not None and route.resource in self.resources:
            return route.resource, environ.get("REQUEST_METHOD", "") in WRITES
        return None if self.other is None else self.other(environ)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        counted = self._counted(environ)
        if counted is None:
            return self.wsgi_app(environ, start_response)
        principal = ANONYMOUS
        if self.principal is not None:
            with contextlib.suppress(Problem):  # refused by the access check next; meanwhile counted by address
                principal = self.principal(environ)
        quota = self.limiter.quota(principal, *counted)
        verdict = self.limiter.hit(quota, caller_of(principal, environ))
        if verdict is None:
            return self.wsgi_app(environ, start_response)
        fields = verdict.headers()
        if not verdict.allowed:
            problem = verdict.refusal(f"Too many requests: at most {quota.rate} ({quota.name})")
            return refuse(problem, environ, start_response, fields)

        def with_fields(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, [*headers, *fields], exc_info)

        return self.wsgi_app(environ, with_fields)
