"""The response cache of one app: entries built once, shared, and dropped by generation bumps."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
from mongoengine import signals

from restengine import metrics
from restengine.cache.backends import Backend, CircuitBreaker, LocalBackend, RedisBackend, Unavailable
from restengine.cache.keys import ITEMS_MAX, CollectionKeys, entry_base, item_token, stored_pk
from restengine.cache.near import NearCache
from restengine.config import Settings
from restengine.redisconn import RedisConnection

if TYPE_CHECKING:
    from flask import Flask

EXTENSION = "restengine.cache"
log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Entry:
    """A cached response: the exact body, its ETag, the headers that go with it."""

    body: bytes
    etag: str
    headers: dict[str, str]
    fresh_until: float

    def encode(self) -> bytes:
        meta = orjson.dumps({"e": self.etag, "h": self.headers, "f": self.fresh_until})
        return meta + b"\n" + self.body  # orjson never writes a raw newline

    @classmethod
    def decode(cls, data: bytes) -> Entry:
        meta, _, body = data.partition(b"\n")
        fields = orjson.loads(meta)
        return cls(body, fields["e"], fields["h"], fields["f"])

    @property
    def fresh(self) -> bool:
        return time.time() < self.fresh_until


class Lookup(NamedTuple):
    """One lookup: the entry's full key (generations included) and the entry stored there, if any."""

    key: str
    entry: Entry | None


@dataclasses.dataclass
class Outcome:
    """What a cached read produced: the entry and ``hit``, ``miss`` or ``stale``."""

    entry: Entry
    status: str


class ResponseCache:
    """The app's response cache (``app.extensions["restengine.cache"]``)."""

    def __init__(self, settings: Settings, redis_conn: RedisConnection) -> None:
        self.enabled = settings.cache_ttl > 0
        self.default_ttl = settings.cache_ttl
        self.stale_ttl = settings.cache_stale_ttl
        self.lock_wait = settings.cache_lock_wait_ms / 1000
        self.breaker = CircuitBreaker(cooldown=settings.cache_breaker_seconds)
        self.shared = redis_conn.configured
        self.backend: Backend = RedisBackend(redis_conn, self.breaker) if self.shared else LocalBackend()
        self.database = ""  # set by init_app: generations are per database and collection
        self.near: NearCache | None = None  # set by init_app when Redis is shared and RESTENGINE_CACHE_NEAR_MB > 0

    # ------------------------------------------------------------ generations

    def keys(self, collection: str) -> CollectionKeys:
        return CollectionKeys.of(self.database, collection)

    def list_generations(self, collections: Iterable[str]) -> list[str]:
        """What a list (or an expansion) built from ``collections`` depends on: every write to them."""
        return [self.keys(c).generation for c in collections]

    def item_generations(self, collection: str, pk: Any) -> list[str]:
        """What one document's representation depends on: writes to it (``pk`` as stored) and collection-wide ones."""
        keys = self.keys(collection)
        token = item_token(pk)
        return [keys.documents] if token is None else [keys.documents, keys.item(token)]

    def invalidate(self, collections: Iterable[str]) -> None:
        """Bump every generation of ``collections``: every cached read built from them is gone."""
        generations = [key for keys in map(self.keys, set(collections)) for key in (keys.generation, keys.documents)]
        if not generations:
            return
        if self.near is not None:  # this process knows now, whether or not Redis hears of it
            self.near.forget(generations)
        try:
            self.backend.bump(generations)
        except Unavailable:
            log.warning("could not invalidate %s now; will when Redis answers (TTL bounds staleness)", generations)

    def invalidate_items(self, collection: str, pks: Iterable[Any]) -> None:
        """A write to the documents ``pks`` (as stored): their item reads and the collection's lists are gone."""
        tokens = {item_token(pk) for pk in pks}
        if None in tokens or len(tokens) > ITEMS_MAX:
            self.invalidate([collection])
            return
        keys, items = self.keys(collection), sorted(t for t in tokens if t is not None)
        if self.near is not None:  # this process knows now; owed to Redis, the bump becomes collection-wide
            self.near.forget([keys.generation, keys.documents, *map(keys.item, items)])
        try:
            self.backend.bump_items(keys, items)
        except Unavailable:
            log.warning("could not invalidate %s now; will when Redis answers (TTL bounds staleness)", collection)

    def _on_document_write(self, sender: Any, document: Any = None, documents: Any = None, **_: Any) -> None:
        collection = getattr(sender, "_get_collection_name", lambda: None)()
        if not collection:
            return
        written = [document] if document is not None else list(documents or ())
        self.invalidate_items(collection, (stored_pk(d) for d in written))

    # ------------------------------------------------------------ reads

    def lookup(self, base: str, generations: Sequence[str]) -> Lookup | None:
        """The entry for ``base`` at the current ``generations``, fresh or not: one round trip.

        ``None`` when the cache cannot be reached (Redis down, breaker open). ``base`` (a
        :func:`~restengine.cache.keys.request_key`) is put in the database's hash slot first.
        """
        base = entry_base(self.database, base)
        near, epoch = self.near, None
        if near is not None:
            known, epoch = near.find(base, generations)
            if known is not None:
                return Lookup(*known)
        try:
            full, value = self.backend.lookup(base, generations)
        except Unavailable:
            return None
        found = Lookup(full, None if value is None else Entry.decode(value))
        if near is not None:
            near.learn(base, generations, found, epoch)
        return found

    def read(
        self,
        base: str,
        collection: str,
        generations: Sequence[str],
        ttl: float,
        compute: Callable[[], Entry],
        looked_up: Lookup | None = None,
    ) -> Outcome:
        """The cached response for ``base``, built by ``compute`` (and stored) on a miss.

        ``generations`` are what the response depends on (:meth:`list_generations`,
        :meth:`item_generations`); ``collection`` is the resource's own. The
        cache stamps the entry ``compute`` returns as fresh for ``ttl`` seconds.
        ``looked_up`` is a :meth:`lookup` of the same ``base`` and ``generations``
        made earlier in this request (the WSGI layer's), saving the round trip.
        Falls back to ``compute`` alone when the cache is unavailable.
        """
        found = looked_up or self.lookup(base, generations)
        if found is None:
            return Outcome(compute(), "miss")
        full, entry = found
        lock_key = f"{full}:lock"
        if entry is not None:
            if entry.fresh:
                return Outcome(entry, "hit")
            if not self._try_lock(lock_key):
                return Outcome(entry, "stale")  # someone else is rebuilding it
        elif not self._try_lock(lock_key):
            waited = self._wait_for(full)
            if waited is not None:
                return Outcome(waited, "hit")
        else:
            built = self._get(full)  # built between our lookup and our lock?
            if built is not None:
                self._unlock(lock_key)
                return Outcome(built, "hit")
        try:
            entry = dataclasses.replace(compute(), fresh_until=time.time() + ttl)
            self._put(full, entry, ttl, self.keys(collection).life)
        finally:
            self._unlock(lock_key)
        return Outcome(entry, "miss")

    def _try_lock(self, key: str) -> bool:
        try:
            return self.backend.lock(key, self.lock_wait * 2 + 1)
        except Unavailable:
            return True

    def _unlock(self, key: str) -> None:
        with contextlib.suppress(Unavailable):
            self.backend.unlock(key)

    def _get(self, key: str) -> Entry | None:
        try:
            value = self.backend.get(key)
        except Unavailable:
            return None
        return None if value is None else Entry.decode(value)

    def _wait_for(self, key: str) -> Entry | None:
        """Poll briefly for the entry another request is building; ``None`` when it takes too long."""
        deadline = time.monotonic() + self.lock_wait
        while time.monotonic() < deadline:
            time.sleep(0.005)
            entry = self._get(key)
            if entry is not None:
                metrics.cache_event(metrics.CACHE_LOCK_WAITS, "filled")
                return entry
        metrics.cache_event(metrics.CACHE_LOCK_WAITS, "timed_out")
        return None

    def _put(self, key: str, entry: Entry, ttl: float, life_key: str) -> None:
        try:
            self.backend.put(key, entry.encode(), ttl + self.stale_ttl, life_key)
        except Unavailable:
            return
        if self.near is not None:
            self.near.keep(key, entry)


def init_app(app: Flask, settings: Settings, redis_conn: RedisConnection) -> ResponseCache:
    """The app's response cache (also ``app.extensions["restengine.cache"]``), invalidated by MongoEngine's signals.

    Without Redis the entries live in the process, so the cache is off when
    gunicorn runs several worker processes (``RESTENGINE_WORKER_PROCESSES``,
    set by the gunicorn configuration): a write would reach one worker's only.
    """
    cache = ResponseCache(settings, redis_conn)
    cache.database = settings.database_name()
    if cache.enabled and cache.shared and settings.cache_near_mb > 0:
        if redis_conn.target.kind == "cluster":
            log.warning(
                "near cache off: REDIS_URL names a Redis Cluster, where client tracking would need a connection per "
                "node that follows slot moves and failovers; every hit is a round trip"
            )
        else:
            cache.near = NearCache(redis_conn, cache.database, settings.cache_near_mb * 1024 * 1024)
    workers = os.environ.get("RESTENGINE_WORKER_PROCESSES", "1")
    if cache.enabled and not cache.shared:
        if workers.isdigit() and int(workers) > 1:
            log.warning("REDIS_URL is not set: the response cache is off (%s worker processes would go stale)", workers)
            cache.enabled = False
        else:
            log.warning("REDIS_URL is not set: the response cache lives in this process (one worker only)")
    app.extensions[EXTENSION] = cache
    # Writes through MongoEngine anywhere in this process (API hooks, legacy code
    # running beside the API) invalidate too. post_delete is left alone on
    # purpose: a receiver makes QuerySet.delete() delete document by document,
    # which would drop the API's compare-and-set; API deletes invalidate explicitly.
    signals.post_save.connect(cache._on_document_write)
    signals.post_bulk_insert.connect(cache._on_document_write)
    return cache
