"""Where list GETs are read on a replica set, and who has just written: read-your-writes without sessions.

What is guaranteed, and by what:

- **A write the client was told succeeded survives a failover.** Every write is sent with ``w: "majority"``
  and is retryable (:func:`restengine.db.write_defaults`), unless ``MONGODB_URI`` (or a host app's own
  connection) says otherwise. A write acknowledged by the primary alone can be rolled back when another
  member is elected before it replicates; a 201 must not be.
- **A caller reads its own writes.** Every write request marks its caller (``Views.caller()``: the
  principal, else the client address) a *recent writer* before the write is sent
  (:class:`restengine.api.outcome.Phases`), for :attr:`ListReads.window` seconds. A list of a recent writer
  is read from the primary. With ``REDIS_URL`` the mark is one ``SET ... EX`` shared by every worker and
  instance; each process also keeps its own marks, so its own reads never depend on Redis. When Redis does
  not answer the check, the list is read from the primary: never a possibly stale read when unsure.
- **The window covers the lag a list may see.** With ``RESTENGINE_MAX_STALENESS_S`` the driver picks no
  secondary estimated to lag more than that; its estimate is exact to about a heartbeat (10 s) plus the
  primary's idle-write period (10 s), so the window is that limit + 20 s. Without the limit, a secondary
  may lag without bound and the window is :data:`UNBOUNDED_WINDOW_S`: a secondary further behind than that
  could still miss the caller's write — set the limit when read-your-writes matters.
- **Validators are compared against the primary.** A conditional list (``If-None-Match``, ``If-Match``) is
  read from the primary: an ETag the client holds came from a fresh read or its own write, and a lagging
  secondary would answer it with an older page.
- **The shared response cache is filled from the primary.** A cached list is shared by every caller, the
  writer included, and stored under the generation the write bumped: filled from a lagging secondary it
  would serve the writer a page without its write for the entry's whole lifetime. The cache's own
  bookkeeping lives in Redis, never in MongoDB.

Not guaranteed: one caller's successive lists off the primary may come from different secondaries (not
monotonic); another caller's write shows in your lists after at most the staleness limit. Item GETs,
a write's read-back, idempotency records and every other read use the client's read preference
(primary unless ``MONGODB_URI`` sets one — leave it unset and use the setting above).

Causal-consistency sessions would need the client to carry the cluster and operation times back in a header
on every request; plain REST clients, caches and proxies do not, so the server remembers who wrote instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pymongo.read_preferences import (
    Nearest,
    Primary,
    PrimaryPreferred,
    Secondary,
    SecondaryPreferred,
    _ServerMode,
)

from restengine import redisconn
from restengine.config import ConfigError, Settings

if TYPE_CHECKING:
    from collections.abc import Mapping

    from flask import Flask

log = logging.getLogger(__name__)

EXTENSION = "restengine.replicas"
FILLS_CACHE = "restengine.list.fills_cache"  # WSGI environ key: this GET's answer goes to the shared cache
KEY_PREFIX = "restengine:wrote:"  # Redis key of a recent writer's mark: KEY_PREFIX + caller
MEASUREMENT_SLACK_S = 20  # heartbeatFrequencyMS (10 s) + the primary's idle write period (10 s)
UNBOUNDED_WINDOW_S = 120  # the window when no staleness limit bounds how far behind a secondary is

PRIMARY = Primary()
_MODES: dict[str, Callable[..., _ServerMode]] = {
    "primaryPreferred": PrimaryPreferred,
    "secondary": Secondary,
    "secondaryPreferred": SecondaryPreferred,
    "nearest": Nearest,
}


def read_preference(mode: str, max_staleness_s: int | None) -> _ServerMode:
    """PyMongo's read preference for ``mode`` (MongoDB's spelling); raises :class:`ConfigError` for a
    staleness limit with ``primary``, which the server refuses."""
    if mode == "primary":
        if max_staleness_s is not None:
            raise ConfigError(
                "RESTENGINE_MAX_STALENESS_S: only applies when RESTENGINE_LIST_READ_PREFERENCE is not primary"
            )
        return PRIMARY
    return _MODES[mode](max_staleness=-1 if max_staleness_s is None else max_staleness_s)


class RecentWriters:
    """Callers who wrote in the last ``window`` seconds: in this process, and in Redis when ``redis`` gives one.

    ``redis`` is called at each use (the app's lazily built client; ``None``: no Redis configured).
    """

    def __init__(self, window: float, redis: Callable[[], Any] | None = None) -> None:
        self.window = window
        self._redis = redis
        self._local: dict[str, float] = {}  # caller -> monotonic time its mark expires
        self._lock = threading.Lock()

    def mark(self, caller: str) -> None:
        """Record that ``caller`` is writing now. A Redis failure is logged: this process still knows."""
        until = time.monotonic() + self.window
        with self._lock:
            if len(self._local) > 10_000:
                now = time.monotonic()
                self._local = {key: end for key, end in self._local.items() if end > now}
            self._local[caller] = until
        client = self._client()
        if client is None:
            return
        try:
            client.set(KEY_PREFIX + caller, b"1", ex=max(1, round(self.window)))
        except Exception as exc:  # redis.RedisError, or no client: other workers may read it from a secondary
            log.warning("could not share the recent-writer mark of %s: %s", caller, type(exc).__name__)

    def recent(self, caller: str) -> bool:
        """Whether ``caller`` wrote within the window — ``True`` too when Redis cannot say (read the primary)."""
        with self._lock:
            until = self._local.get(caller)
        if until is not None and until > time.monotonic():
            return True
        client = self._client()
        if client is None:
            return False
        try:
            return bool(client.exists(KEY_PREFIX + caller))
        except Exception as exc:  # unsure: the primary is always right
            log.warning("recent-writer check failed, reading from the primary: %s", type(exc).__name__)
            return True

    def _client(self) -> Any:
        return None if self._redis is None else self._redis()


class ListReads:
    """Where one app's list GETs are read (see the module's docstring for what it guarantees)."""

    def __init__(self, mode: str, max_staleness_s: int | None, redis: Callable[[], Any] | None = None) -> None:
        self.preference = read_preference(mode, max_staleness_s)
        window = UNBOUNDED_WINDOW_S if max_staleness_s is None else max_staleness_s + MEASUREMENT_SLACK_S
        self.writers = RecentWriters(window, redis)

    @property
    def window(self) -> float:
        """Seconds a caller's lists stay on the primary after it writes."""
        return self.writers.window

    @property
    def off_primary(self) -> bool:
        """Whether lists may be read anywhere but the primary at all."""
        return self.preference is not PRIMARY

    def wrote(self, caller: str) -> None:
        """``caller`` is about to send a write (marked even when lists stay on the primary: a rolling change of
        the setting then finds the marks the instances still on the old one made)."""
        self.writers.mark(caller)

    def for_list(self, caller: Callable[[], str], *, conditional: bool, shared: bool) -> _ServerMode | None:
        """The read preference of one list GET by ``caller()`` (asked only when it matters); ``None``: the
        client's own, when lists are read from the primary anyway (no per-request collection to make).

        The primary when the request is ``conditional``, its answer is ``shared`` (stored in the response
        cache), or the caller wrote recently (or Redis cannot say); else the configured preference.
        """
        if not self.off_primary:
            return None
        if conditional or shared or self.writers.recent(caller()):
            return PRIMARY
        return self.preference


def init_app(app: Flask, settings: Settings) -> ListReads:
    """Keep ``app``'s :class:`ListReads` in ``app.extensions``; marks go to the app's Redis, found at first use.

    Raises :class:`ConfigError` for a staleness limit with primary reads.
    """

    def redis() -> Any:
        conn = app.extensions.get(redisconn.EXTENSION)
        return conn.client() if conn is not None and conn.configured else None

    reads = ListReads(settings.list_read_preference, settings.max_staleness_s, redis)
    app.extensions[EXTENSION] = reads
    return reads


def of(app: Flask) -> ListReads | None:
    """``app``'s :class:`ListReads`; ``None`` for an app ``restengine.create_app`` did not build (lists on the
    client's read preference, no marks)."""
    found = app.extensions.get(EXTENSION)
    return found if isinstance(found, ListReads) else None


def wrote(app: Flask, caller: Callable[[], str]) -> None:
    """Mark ``caller()`` a recent writer of ``app`` (nothing for an app :func:`init_app` did not see)."""
    list_reads = of(app)
    if list_reads is not None:
        list_reads.wrote(caller())


def list_preference(app: Flask, environ: Mapping[str, Any], caller: Callable[[], str]) -> _ServerMode | None:
    """Where a list GET of ``app`` (its WSGI ``environ``) is read (:meth:`ListReads.for_list`); ``None``: the
    client's own read preference, for an app :func:`init_app` did not see."""
    list_reads = of(app)
    if list_reads is None:
        return None
    return list_reads.for_list(
        caller,
        conditional="HTTP_IF_NONE_MATCH" in environ or "HTTP_IF_MATCH" in environ,
        shared=bool(environ.get(FILLS_CACHE)),
    )
