"""One response cache for every worker and instance, never stale after a write.

Keys carry the *generations* of what the response was built from. A write
bumps them after the database write committed, so every worker of every
instance stops using the older entries at once, with no ``KEYS``/``SCAN``
anywhere. A lookup is one Redis round trip: a small Lua script reads the
generations and the entry together. Per collection there are three kinds:

* the collection's generation (``re:g:<db>.<coll>``), bumped by every write:
  lists, and expanded references, use it;
* its *documents* generation (``re:gd:``), bumped only by writes that cannot
  be pinned to single documents (``_bulk``, drops, a watcher restart);
* one *item* generation per written document (``re:gi:``), which an item
  write sets to the collection's new generation.

An item read uses the documents and item generations: a write to one book
leaves every other cached book a hit. Item generations expire (twice the
longest entry lifetime seen for the collection, plus a minute), so Redis
holds one only for documents written recently; since a bump sets a value
never used before, an expired one can never bring back an older entry.

Entries are fresh for the resource's TTL, then *stale* for a short window:
one request rebuilds a stale or missing entry while the others wait briefly
(missing) or get the stale one (``X-Cache: stale``). Stale-while-revalidate
only ever serves an entry of the current generations, i.e. one no write has
invalidated.

Redis is optional and may fail: every call has short socket timeouts, and a
circuit breaker stops trying for a few seconds after repeated failures, so
requests fall back to the database. Generations a process could not bump
while Redis was away are bumped as soon as it answers again (a background
thread retries about once a second); until then other workers may serve
entries from before such a write: a window of about the breaker's cooldown
after Redis returns. A restarted, empty Redis has no such window. Without
``REDIS_URL`` the cache lives in the process (Flask-Caching's SimpleCache),
and only when gunicorn runs a single worker: with several, a write would
invalidate only its own process's entries, so the cache is off.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote_plus

import orjson
from bson import ObjectId
from flask_caching.backends import SimpleCache
from mongoengine import signals
from redis.commands.core import Script
from redis.exceptions import NoScriptError, RedisError

from restengine.config import Settings
from restengine.redisconn import EXTENSION as REDIS_EXTENSION
from restengine.redisconn import RedisConnection

if TYPE_CHECKING:
    from flask import Flask

EXTENSION = "restengine.cache"
PREFIX = "re:"
log = logging.getLogger(__name__)

# Reads every generation, builds the full key and gets the entry: one round trip.
_LOOKUP = """
local parts = {}
for i, key in ipairs(KEYS) do parts[i] = redis.call('GET', key) or '0' end
local full = ARGV[1] .. ':' .. table.concat(parts, '.')
return {full, redis.call('GET', full)}
"""
_LOOKUP_SHA = hashlib.sha1(_LOOKUP.encode()).hexdigest()

# Stores an entry and raises the collection's recorded longest entry lifetime (ms).
_PUT = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local life = tonumber(redis.call('GET', KEYS[2]) or '0')
if life < tonumber(ARGV[2]) then redis.call('SET', KEYS[2], ARGV[2]) end
"""

# Bumps a collection's generation and sets the written documents' item
# generations to the new value, expiring after twice the longest entry
# lifetime plus a minute (an entry put late by a slow request included).
BUMP_ITEMS = """
local generation = redis.call('INCR', KEYS[1])
local life = tonumber(redis.call('GET', KEYS[2]) or '0')
for i = 3, #KEYS do redis.call('SET', KEYS[i], generation, 'PX', 2 * life + 60000) end
return generation
"""

ITEMS_MAX = 256  # a write of more documents than this invalidates the whole collection


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


class CircuitBreaker:
    """Open after ``threshold`` consecutive failures; let one call through after ``cooldown`` seconds."""

    def __init__(self, threshold: int = 3, cooldown: float = 5.0) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._failures = 0
        self._open_until = 0.0
        self._lock = threading.Lock()

    def allow(self) -> bool:
        if self._failures == 0:  # closed: the common case needs no lock
            return True
        with self._lock:
            if self._failures < self.threshold:
                return True
            if time.monotonic() >= self._open_until:
                self._open_until = time.monotonic() + self.cooldown  # one trial call, others wait
                return True
            return False

    def succeeded(self) -> None:
        if self._failures:
            with self._lock:
                self._failures = 0

    def failed(self) -> None:
        with self._lock:
            self._failures += 1
            if self._failures >= self.threshold:
                self._open_until = time.monotonic() + self.cooldown

    @property
    def open(self) -> bool:
        with self._lock:
            return self._failures >= self.threshold


@dataclasses.dataclass(frozen=True)
class CollectionKeys:
    """The Redis keys of one collection's generations, and of its longest entry lifetime."""

    generation: str
    documents: str
    life: str
    prefix: str

    @classmethod
    def of(cls, database: str, collection: str) -> CollectionKeys:
        name = f"{database}.{collection}"
        return cls(generation_key(database, collection), f"{PREFIX}gd:{name}", f"{PREFIX}life:{name}",
                   f"{PREFIX}gi:{name}:")  # fmt: skip

    def item(self, token: str) -> str:
        return self.prefix + token


def item_token(value: Any) -> str | None:
    """A document's ``_id`` (as stored) as a short string, the same in every process; ``None`` for other types.

    Writers and readers must agree on it, the watcher included (it sees the
    stored ``_id`` of a change), hence the stored value, not MongoEngine's.
    """
    if isinstance(value, ObjectId):
        return f"o{value}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"i{value}"
    if isinstance(value, uuid.UUID):
        return f"u{value.hex}"
    if isinstance(value, str):
        return f"s{value}" if len(value) <= 64 else "h" + hashlib.blake2b(value.encode(), digest_size=16).hexdigest()
    return None


class Backend(Protocol):
    def lookup(self, base: str, generations: Sequence[str]) -> tuple[str, bytes | None]: ...
    def get(self, key: str) -> bytes | None: ...
    def put(self, key: str, value: bytes, ttl: float, life_key: str) -> None: ...
    def lock(self, key: str, ttl: float) -> bool: ...
    def unlock(self, key: str) -> None: ...
    def bump(self, generations: Iterable[str]) -> None: ...
    def bump_items(self, keys: CollectionKeys, items: Sequence[str]) -> None: ...


class Unavailable(Exception):
    """The shared cache cannot be used right now (Redis down, slow, or the breaker is open)."""


class RedisBackend:
    """Entries and generations in Redis, every call guarded by the circuit breaker."""

    def __init__(self, conn: RedisConnection, breaker: CircuitBreaker) -> None:
        self.conn = conn
        self.breaker = breaker
        # redis-py scripts: EVALSHA, loading the script on NOSCRIPT (a restarted Redis)
        self._put_script = Script(None, _PUT.encode())  # type: ignore[arg-type]
        self._bump_items_script = Script(None, BUMP_ITEMS.encode())  # type: ignore[arg-type]
        self._pending: set[str] = set()  # generations not bumped while Redis was away
        self._pending_lock = threading.Lock()
        self._retrier: threading.Thread | None = None

    def _call(self, action: Callable[[Any], Any]) -> Any:
        if not self.breaker.allow():
            raise Unavailable("circuit open")
        client = self.conn.client()
        try:
            if self._pending:
                self._flush_pending(client)
            result = action(client)
        except RedisError as exc:
            self.breaker.failed()
            log.warning("redis unavailable (%s): serving from the database", type(exc).__name__)
            raise Unavailable(str(exc)) from exc
        self.breaker.succeeded()
        return result

    def _flush_pending(self, client: Any) -> None:
        with self._pending_lock:
            owed, self._pending = self._pending, set()
        try:
            pipe = client.pipeline(transaction=False)
            for key in owed:
                pipe.incr(key)
            pipe.execute()
        except RedisError:
            with self._pending_lock:
                self._pending |= owed
            raise

    def lookup(self, base: str, generations: Sequence[str]) -> tuple[str, bytes | None]:
        def run(client: Any) -> tuple[str, bytes | None]:
            try:  # EVALSHA directly: the hot path of every hit
                full, value = client.execute_command("EVALSHA", _LOOKUP_SHA, len(generations), *generations, base)
            except NoScriptError:  # a restarted or flushed Redis: load it once
                full, value = client.eval(_LOOKUP, len(generations), *generations, base)
            return full.decode(), value

        result: tuple[str, bytes | None] = self._call(run)
        return result

    def get(self, key: str) -> bytes | None:
        value: bytes | None = self._call(lambda client: client.get(key))
        return value

    def put(self, key: str, value: bytes, ttl: float, life_key: str) -> None:
        px = max(1, int(ttl * 1000))
        self._call(lambda client: self._put_script(keys=[key, life_key], args=[value, px], client=client))

    def lock(self, key: str, ttl: float) -> bool:
        return bool(self._call(lambda client: client.set(key, b"1", nx=True, px=max(1, int(ttl * 1000)))))

    def unlock(self, key: str) -> None:
        self._call(lambda client: client.delete(key))

    def bump(self, generations: Iterable[str]) -> None:
        keys = list(generations)

        def run(client: Any) -> None:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.incr(key)
            pipe.execute()

        self._bump_or_owe(run, keys)

    def bump_items(self, keys: CollectionKeys, items: Sequence[str]) -> None:
        script_keys = [keys.generation, keys.life, *(keys.item(t) for t in items)]
        # Owed while Redis is away: the whole collection (an item bump cannot wait; INCRs can).
        self._bump_or_owe(lambda client: self._bump_items_script(keys=script_keys, client=client),
                          [keys.generation, keys.documents])  # fmt: skip

    def _bump_or_owe(self, run: Callable[[Any], Any], owed: Sequence[str]) -> None:
        try:
            self._call(run)
        except Unavailable:
            with self._pending_lock:
                self._pending.update(owed)
                self._start_retrier()
            raise

    def _start_retrier(self) -> None:
        """Send owed bumps about once a second until Redis takes them, even if no request comes."""
        if self._retrier is not None and self._retrier.is_alive() and self._retrier.ident is not None:
            return
        self._retrier = threading.Thread(target=self._retry_pending, name="restengine-cache-retry", daemon=True)
        self._retrier.start()

    def _retry_pending(self) -> None:
        while self._pending:
            time.sleep(1.0)
            with contextlib.suppress(Unavailable, RuntimeError):
                self._call(lambda client: client.ping())  # _call sends what is owed first


class LocalBackend:
    """Per-process entries (Flask-Caching's SimpleCache) and generations: no Redis."""

    ITEMS_KEPT = 50_000  # item generations kept before they and every entry are dropped

    def __init__(self) -> None:
        self._values = SimpleCache(threshold=5000)
        self._generations: dict[str, int] = {}
        self._items = 0  # item generations kept
        self._epoch = 0  # part of every key: a new epoch makes every older entry unreachable
        self._locks: dict[str, float] = {}
        self._lock = threading.Lock()

    def lookup(self, base: str, generations: Sequence[str]) -> tuple[str, bytes | None]:
        with self._lock:
            parts = [str(self._generations.get(key, 0)) for key in generations]
            full = f"{base}:{self._epoch}:{'.'.join(parts)}"
        return full, self._values.get(full)

    def get(self, key: str) -> bytes | None:
        value: bytes | None = self._values.get(key)
        return value

    def put(self, key: str, value: bytes, ttl: float, life_key: str) -> None:
        self._values.set(key, value, timeout=max(1, int(ttl + 0.999)))

    def lock(self, key: str, ttl: float) -> bool:
        now = time.monotonic()
        with self._lock:
            if self._locks.get(key, 0.0) > now:
                return False
            self._locks[key] = now + ttl
            return True

    def unlock(self, key: str) -> None:
        with self._lock:
            self._locks.pop(key, None)

    def bump(self, generations: Iterable[str]) -> None:
        with self._lock:
            for key in generations:
                self._generations[key] = self._generations.get(key, 0) + 1

    def bump_items(self, keys: CollectionKeys, items: Sequence[str]) -> None:
        with self._lock:
            generation = self._generations[keys.generation] = self._generations.get(keys.generation, 0) + 1
            if self._items + len(items) > self.ITEMS_KEPT:
                # Forget the item generations, and every entry (even one a request is building now).
                self._generations = {k: v for k, v in self._generations.items() if not k.startswith(f"{PREFIX}gi:")}
                self._epoch += 1
                self._values.clear()
                self._items = 0
            for token in items:
                self._generations[keys.item(token)] = generation
            self._items += len(items)


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
        try:
            self.backend.bump_items(self.keys(collection), sorted(t for t in tokens if t is not None))
        except Unavailable:
            log.warning("could not invalidate %s now; will when Redis answers (TTL bounds staleness)", collection)

    def _on_document_write(self, sender: Any, document: Any = None, documents: Any = None, **_: Any) -> None:
        collection = getattr(sender, "_get_collection_name", lambda: None)()
        if not collection:
            return
        written = [document] if document is not None else list(documents or ())
        self.invalidate_items(collection, (stored_pk(d) for d in written))

    # ------------------------------------------------------------ reads

    def fresh(self, base: str, generations: Sequence[str]) -> Entry | None:
        """The fresh entry for ``base``, if there is one: one round trip, no locking, no fallback."""
        try:
            _, value = self.backend.lookup(base, generations)
        except Unavailable:
            return None
        if value is None:
            return None
        entry = Entry.decode(value)
        return entry if entry.fresh else None

    def read(
        self, base: str, collection: str, generations: Sequence[str], ttl: float, compute: Callable[[], Entry | None]
    ) -> Outcome | None:
        """The cached response for ``base`` (built by ``compute`` on a miss), or ``None`` when not cacheable.

        ``generations`` are what the response depends on (:meth:`list_generations`,
        :meth:`item_generations`); ``collection`` is the resource's own.
        ``compute`` returns ``None`` for a response that must not be cached; the
        cache stamps the entry it returns as fresh for ``ttl`` seconds.
        Falls back to ``compute`` alone when the cache is unavailable.
        """
        try:
            full, value = self.backend.lookup(base, generations)
        except Unavailable:
            entry = compute()
            return None if entry is None else Outcome(entry, "miss")
        lock_key = f"{full}:lock"
        if value is not None:
            entry = Entry.decode(value)
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
            entry = compute()
            if entry is not None:
                entry = dataclasses.replace(entry, fresh_until=time.time() + ttl)
                self._put(full, entry, ttl, self.keys(collection).life)
        finally:
            self._unlock(lock_key)
        return None if entry is None else Outcome(entry, "miss")

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
                return entry
        return None

    def _put(self, key: str, entry: Entry, ttl: float, life_key: str) -> None:
        with contextlib.suppress(Unavailable):
            self.backend.put(key, entry.encode(), ttl + self.stale_ttl, life_key)


def generation_key(database: str, collection: str) -> str:
    """The Redis key of the generation of ``database.collection`` (``restengine watch`` bumps it too)."""
    return f"{PREFIX}g:{database}.{collection}"


def stored_pk(doc: Any) -> Any:
    """A MongoEngine document's primary key as the database stores it (what the watcher sees)."""
    field = doc._fields.get(doc._meta.get("id_field") or "id")
    return doc.pk if field is None else field.to_mongo(doc.pk)


def _param_name(pair: str) -> str:
    return unquote_plus(pair.partition("=")[0])


def request_key(resource_name: str, environ: Mapping[str, Any]) -> str:
    """The cache key of a GET, from the WSGI environ: resource, scheme, host, path, query.

    The query is normalized by sorting its parameters by (decoded) name, and
    *stably*: a repeated parameter keeps its order, because the first value is
    the one that counts (``?limit=5&limit=10`` and ``?limit=10&limit=5`` differ).
    Anything else that differs in spelling only makes a different key: a miss,
    never a wrong hit. Bodies hold absolute URLs, hence scheme and host.
    """
    host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME')}:{environ.get('SERVER_PORT')}"
    pairs = sorted(environ.get("QUERY_STRING", "").split("&"), key=_param_name)
    url = f"{environ.get('wsgi.url_scheme')}://{host}{environ.get('SCRIPT_NAME', '')}{environ.get('PATH_INFO', '')}"
    digest = hashlib.blake2b(f"{url}?{'&'.join(pairs)}".encode(), digest_size=16).hexdigest()
    return f"{PREFIX}c:{resource_name}:{digest}"


def init_app(app: Flask, settings: Settings) -> ResponseCache:
    cache = ResponseCache(settings, app.extensions[REDIS_EXTENSION])
    cache.database = settings.database_name()
    # gunicorn.conf.py says how many worker processes share this app. Without
    # Redis each would keep its own entries, and a write in one would leave
    # the others serving what it replaced: with several, no cache at all.
    workers = os.environ.get("RESTENGINE_WORKER_PROCESSES", "1")
    if cache.enabled and not cache.shared and workers.isdigit() and int(workers) > 1:
        log.warning("REDIS_URL is not set: the response cache is off (%s worker processes would go stale)", workers)
        cache.enabled = False
    app.extensions[EXTENSION] = cache
    # Writes through MongoEngine anywhere in this process (API hooks, legacy code
    # running beside the API) invalidate too. post_delete is left alone on
    # purpose: a receiver makes QuerySet.delete() delete document by document,
    # which would drop the API's compare-and-set; API deletes invalidate explicitly.
    signals.post_save.connect(cache._on_document_write)
    signals.post_bulk_insert.connect(cache._on_document_write)
    return cache
