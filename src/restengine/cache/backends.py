"""Where entries and generations live: Redis (shared) or the process (one worker only).

Every Redis call goes through a circuit breaker; a bump that cannot be sent
is owed and retried in the background until Redis answers.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from flask_caching.backends import SimpleCache
from redis.commands.core import Script
from redis.exceptions import NoScriptError, RedisError

from restengine import metrics
from restengine.cache.keys import PREFIX, CollectionKeys
from restengine.redisconn import ERRORS as REDIS_ERRORS
from restengine.redisconn import RedisConnection

log = logging.getLogger(__name__)

# Every key one script touches, declared (KEYS) or built inside it (the entry's full key), is in the database's
# hash slot (restengine.cache.keys): Redis Cluster runs a script only on keys of one slot.

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
                was_open = self._failures >= self.threshold
                self._failures = 0
            if was_open:
                metrics.breaker(False)

    def failed(self) -> None:
        with self._lock:
            self._failures += 1
            opened = self._failures == self.threshold
            if self._failures >= self.threshold:
                self._open_until = time.monotonic() + self.cooldown
        if opened:
            metrics.breaker(True)

    @property
    def open(self) -> bool:
        with self._lock:
            return self._failures >= self.threshold


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
        try:
            client = self.conn.client()  # a Cluster's client asks a node for the slots when first built
            if self._pending:
                self._flush_pending(client)
            result = action(client)
        except REDIS_ERRORS as exc:
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
            metrics.cache_event(metrics.CACHE_INVALIDATIONS, "owed")
            raise
        metrics.cache_event(metrics.CACHE_INVALIDATIONS, "sent")

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
