"""What one read may cost the database: a time limit of its own, and a cap on expensive reads run at once.

**Time.** Every read runs under the request's deadline
(``RESTENGINE_DB_TIMEOUT_MS``), and PyMongo sends what is left of it as each
command's ``maxTimeMS``. An expensive query (an index-less filter, a count no
index serves) runs under a shorter limit of its own
(``RESTENGINE_QUERY_TIME_MS``) inside it. Either way the database itself stops a query that runs
too long, instead of working on after the client gave up. A query stopped for
its own limit is the client's problem, not the database's, when it is an
expensive one (an index-less filter, a count no index serves):
:class:`QueryTooExpensive` (422), never the 503 of a database that is down.
A cheap query that runs out of time stays a 503: the database is slow for
everyone. Told apart like this, while the request's deadline still has time:

* the server answered "time limit exceeded" (``ExecutionTimeout``, code 50),
  or PyMongo saw the limit spent before sending → too expensive;
* no answer in time (a socket timeout, which races the server's own answer
  at the limit) → the database is pinged with what is left of the deadline:
  it answers → too expensive; it does not → 503 (a frozen or unreachable
  database stays a 503, whatever the query).

**Concurrency.** :class:`Slots` caps the expensive reads (index-less filters,
counts no index serves) one caller runs at once — across every worker and
instance, through Redis — and all callers together in one worker, so one
client's slow queries cannot take every thread and pooled connection, nor
keep the database scanning on every worker at once: past either cap,
:class:`TooManyExpensive` (429).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pymongo
from pymongo.errors import ExecutionTimeout, NetworkTimeout, ServerSelectionTimeoutError

from restengine import metrics
from restengine.errors import Problem, database_cause
from restengine.health import check_database
from restengine.redisconn import ERRORS as REDIS_ERRORS

log = logging.getLogger(__name__)

DEADLINE = "restengine.deadline"  # WSGI environ key: time.monotonic() when the request's database deadline ends
MARGIN = 0.02  # seconds: a deadline that ends within this is spent


class QueryTooExpensive(Problem):
    def __init__(self, limit_ms: int) -> None:
        super().__init__(
            f"The database stopped this query at its time limit ({limit_ms} ms). Ask for less: filter on "
            "indexed fields, fewer items per page, no count=exact.",
            status=422,
            type="urn:restengine:problem:query-too-expensive",
            title="Query too expensive",
        )


class TooManyExpensive(Problem):
    def __init__(self, detail: str) -> None:
        super().__init__(
            detail,
            status=429,
            type="urn:restengine:problem:too-many-expensive-queries",
            title="Too many expensive queries at once",
            headers={"Retry-After": "1"},
        )


@contextmanager
def query_time(limit: float, deadline: float | None) -> Iterator[None]:
    """Run an expensive query's database work under ``limit`` seconds (inside the request's deadline).

    ``deadline`` (``time.monotonic()``) is when the request's deadline ends; a
    timeout met while it still had time is the query's own (see the module).
    """
    try:
        with pymongo.timeout(limit):
            yield
    except Exception as exc:
        if _overran(exc, deadline):
            metrics.refused("query_too_expensive")
            raise QueryTooExpensive(round(limit * 1000)) from exc
        raise


def _overran(exc: BaseException, deadline: float | None) -> bool:
    cause = database_cause(exc)
    if cause is None or isinstance(cause, ServerSelectionTimeoutError):
        return False
    left = (deadline - time.monotonic()) if deadline is not None else 0.5
    if left <= MARGIN:
        return False  # the request's deadline, not the query's limit: the database is slow for everyone
    if isinstance(cause, ExecutionTimeout) or getattr(cause, "code", None) == 50:
        return True
    if isinstance(cause, NetworkTimeout):
        return check_database(left) == "ok"  # it answers: the query, not the database, ran out of time
    return False


# Take one of a caller's shared slots: drop the leases that ended, refuse at the cap, else lease one more until
# now + ARGV[2] ms (Redis's own clock: every instance agrees on it). KEYS[1]: the caller's set of leases.
ACQUIRE = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[2]), ARGV[3])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
"""
SHARED_PREFIX = "re:xq:"
RETRY_SECONDS = 2.0  # after Redis failed, how long the per-process caps alone apply before it is tried again


class Slots:
    """The expensive reads running: at most ``per_caller`` per caller and ``total`` in all in this worker.

    With ``shared`` (the process's Redis client), a caller's ``per_caller``
    counts across every worker and instance: each running expensive read
    holds a lease in Redis (until it ends, or ``lease`` seconds at most, for
    a worker that died holding one). When Redis cannot be reached, the
    per-process caps alone apply (a warning is logged once per outage).
    """

    def __init__(
        self, per_caller: int, total: int, *, shared: Callable[[], Any] | None = None, lease: float = 5.0
    ) -> None:
        self.per_caller = per_caller
        self.total = total
        self.shared = shared
        self.lease_ms = max(1, round(lease * 1000))
        self._script: Any = None
        self._down_until = 0.0
        self._held: dict[str, int] = {}
        self._running = 0
        self._lock = threading.Lock()

    def _too_many(self) -> TooManyExpensive:
        metrics.refused("too_many_expensive")
        return TooManyExpensive(
            f"You already run {self.per_caller} expensive queries (index-less filters, counts no index serves) at "
            f"once, as many as are allowed. Wait for them, or ask for less."
        )

    @contextmanager
    def hold(self, caller: str) -> Iterator[None]:
        """One slot for ``caller`` while the block runs; :class:`TooManyExpensive` when none is free."""
        with self._lock:
            mine = self._held.get(caller, 0)
            if mine >= self.per_caller:
                raise self._too_many()
            if self._running >= self.total:
                metrics.refused("too_many_expensive")
                raise TooManyExpensive("The server runs as many expensive queries as it can at once; retry shortly.")
            self._held[caller] = mine + 1
            self._running += 1
        lease = None
        try:
            lease = self._lease(caller)
            yield
        finally:
            if lease is not None:
                self._release(caller, lease)
            with self._lock:
                self._running -= 1
                left = self._held[caller] - 1
                if left:
                    self._held[caller] = left
                else:
                    del self._held[caller]

    def _lease(self, caller: str) -> str | None:
        """A shared lease for ``caller`` (its token), ``None`` without Redis; :class:`TooManyExpensive` at the cap."""
        if self.shared is None or (self._down_until and time.monotonic() < self._down_until):
            return None
        token = uuid.uuid4().hex
        try:
            if self._script is None:
                self._script = self.shared().register_script(ACQUIRE)
            taken = self._script(keys=[SHARED_PREFIX + caller], args=[self.per_caller, self.lease_ms, token])
        except REDIS_ERRORS as exc:
            first = not self._down_until
            self._down_until = time.monotonic() + RETRY_SECONDS
            if first:
                log.warning("expensive queries are capped per process only: Redis cannot be reached (%s)", exc)
            return None
        if self._down_until:
            self._down_until = 0.0
            log.warning("expensive queries are capped across the service again: Redis answers")
        if not taken:
            raise self._too_many()
        return token

    def _release(self, caller: str, token: str) -> None:
        with contextlib.suppress(*REDIS_ERRORS):  # the lease ends by itself
            self.shared().zrem(SHARED_PREFIX + caller, token)  # type: ignore[misc]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"running": self._running, "callers": dict(self._held)}
