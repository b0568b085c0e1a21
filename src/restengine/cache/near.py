"""Hot cache entries in the worker's own memory, answered without a Redis round trip.

A cached response lives in Redis under a key naming the generations it was built at
(``restengine.cache.keys``), so an entry under a full key never changes meaning: what can
go out of date is only the worker's idea of the *current* generations. The near cache
keeps those, with the entries found or built at them, and Redis tells it when they change:
one connection per worker process asks for invalidation messages on every generation key
of the app's database (``CLIENT TRACKING ... REDIRECT <itself> BCAST PREFIX ...``, Redis 6
and later) and subscribes to them. A write anywhere (any worker, any instance,
``restengine watch``), a generation key's expiry or eviction, and a ``FLUSHALL`` all reach
it, and whatever they name is forgotten.

Before every answer from memory the pending messages are read (a poll of one socket, no
round trip). Redis sends a write's invalidation before it answers the writer (in BCAST mode,
its event loop queues them first), so a response built from memory after the writer heard
back does not predate that write: a client's next read, on any worker, sees its own write.

Answers from memory stop (and everything known is forgotten) when the connection fails or
Redis is restarted, and whenever Redis has not answered the connection's ``PING`` (two a
second while requests come) for :data:`SILENCE` seconds, so a network partition falls back to Redis (and from
there to the database) within that time. A generation learnt from a lookup that overlapped
an invalidation is not kept (``epoch``), the race every client-side cache must close.
An entry is only ever served while fresh; stale ones, misses and locks are Redis's.

Under Sentinel the tracking connection is made from the client's pool, so it asks the sentinels for the
master as it connects, like every other connection. A failover ends it in one of the ways above (a killed
master's socket fails; Sentinel disconnects the clients of a master it demotes; a partitioned one stops
answering ``PING``), everything known is forgotten, and the next connection tracks the new master: memory
never answers from what the old master said after the new one took writes, provided the sentinels'
``down-after-milliseconds`` exceeds :data:`SILENCE` (a partitioned master is dropped before it is replaced;
production values are several seconds). Under Cluster there is no near
cache (``restengine.cache.store.init_app`` says so at start): tracking would need one connection per node,
following slot moves and failovers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import redis
from redis.exceptions import RedisError, ResponseError

from restengine.cache.keys import database_prefix

if TYPE_CHECKING:
    from restengine.cache.store import Entry, Lookup
    from restengine.redisconn import RedisConnection

log = logging.getLogger(__name__)

CHANNEL = "__redis__:invalidate"  # where Redis sends tracking invalidations (RESP2)
PING_EVERY = 0.5  # seconds between PINGs on the tracking connection (sent while requests come)
SILENCE = 1.5  # seconds without a PONG before memory stops answering
RETRY_AFTER = 1.0  # seconds between attempts to (re)open the tracking connection
GENERATIONS_KEPT = 100_000  # generation values kept before all are forgotten (they are relearnt)


def prefixes(database: str) -> list[str]:
    """The key prefixes of ``database``'s generations (collection, documents, items): disjoint, as BCAST wants."""
    return [f"{database_prefix(database)}{kind}:" for kind in ("g", "gd", "gi")]


class NearCache:
    """One process's hot entries and the generations they hold at (see the module).

    ``max_bytes`` bounds the entries' bodies (least recently used go first). Thread-safe; the
    connection is opened on first use in each process (after gunicorn's fork).
    """

    def __init__(self, redis_conn: RedisConnection, database: str, max_bytes: int) -> None:
        self.redis_conn = redis_conn
        self.database = database
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._generations: dict[str, str] = {}
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._bytes = 0
        self._epoch = 0  # moves on whenever a generation may have changed unseen or was forgotten
        self._conn: Any = None
        self._pid = 0
        self._subscribed = False
        self._ping_at = 0.0
        self._pong_at = 0.0
        self._retry_at = 0.0
        self.unsupported = False  # Redis refused tracking: never tried again

    # ------------------------------------------------------------ reads

    def find(self, base: str, generations: Sequence[str]) -> tuple[tuple[str, Entry] | None, int | None]:
        """The full key and fresh entry for ``base`` at the current ``generations`` when memory knows them, and
        the epoch to hand to :meth:`learn` (``None``: memory cannot answer now, learn nothing)."""
        with self._lock:
            if not self._listening():
                return None, None
            parts = []
            for key in generations:
                value = self._generations.get(key)
                if value is None:
                    return None, self._epoch
                parts.append(value)
            full = base + ":" + ".".join(parts)
            entry = self._entries.get(full)
            if entry is None or not entry.fresh:
                return None, self._epoch
            self._entries.move_to_end(full)
            return (full, entry), self._epoch

    def learn(self, base: str, generations: Sequence[str], found: Lookup, epoch: int | None) -> None:
        """Keep the generations a Redis lookup of ``base`` found (they are in its full key), and its entry
        when fresh; nothing when an invalidation was read since :meth:`find` gave ``epoch``."""
        head = base + ":"
        if epoch is None or not found.key.startswith(head):
            return
        parts = found.key[len(head) :].split(".")
        if len(parts) != len(generations):
            return
        with self._lock:
            if epoch != self._epoch or not self._subscribed:
                return
            if len(self._generations) + len(parts) > GENERATIONS_KEPT:
                self._forget()
                return
            self._generations.update(zip(generations, parts, strict=True))
            if found.entry is not None and found.entry.fresh:
                self._keep(found.key, found.entry)

    def forget(self, generations: Sequence[str]) -> None:
        """This process is writing what ``generations`` stand for: never answer from what it knew of them."""
        with self._lock:
            for key in generations:
                self._generations.pop(key, None)
            self._epoch += 1

    def keep(self, full: str, entry: Entry) -> None:
        """An entry just stored in Redis under ``full``: it will not change meaning, so memory may hold it."""
        with self._lock:
            if self._subscribed:
                self._keep(full, entry)

    def _keep(self, full: str, entry: Entry) -> None:
        size = len(entry.body) + len(full)
        if size > self.max_bytes // 8:
            return  # one entry never crowds out the rest
        old = self._entries.pop(full, None)
        if old is not None:
            self._bytes -= len(old.body) + len(full)
        self._entries[full] = entry
        self._bytes += size
        while self._bytes > self.max_bytes and self._entries:
            key, dropped = self._entries.popitem(last=False)
            self._bytes -= len(dropped.body) + len(key)

    def _forget(self) -> None:
        self._generations.clear()
        self._entries.clear()
        self._bytes = 0
        self._epoch += 1

    # ------------------------------------------------------------ the tracking connection

    def _listening(self) -> bool:
        """Read what Redis sent; whether memory may answer now (subscribed, heard from within SILENCE)."""
        if self._pid != os.getpid():  # a forked child: the parent's socket and knowledge are not its own
            self._conn, self._subscribed, self._pid = None, False, os.getpid()
            self._forget()
        now = time.monotonic()
        if self._conn is None:
            if not self.unsupported and now >= self._retry_at:  # opened aside: no request waits for a connect
                self._retry_at = now + RETRY_AFTER
                threading.Thread(target=self._open, name="restengine-near-cache", daemon=True).start()
            return False
        try:
            if now >= self._ping_at:
                self._conn.send_command("PING", check_health=False)
                self._ping_at = now + PING_EVERY
            while self._conn.can_read(timeout=0):
                self._handle(self._conn.read_response(), now)
        except (RedisError, OSError, ValueError, IndexError, TypeError) as exc:
            log.info("near cache: tracking connection lost (%s); answering from Redis", type(exc).__name__)
            self._close()
            return False
        return self._subscribed and now - self._pong_at < SILENCE

    def _handle(self, reply: Any, now: float) -> None:
        kind = reply[0].decode() if isinstance(reply[0], bytes) else reply[0]
        if kind == "message":
            keys = reply[2]
            if keys is None:  # FLUSHALL / FLUSHDB: every generation starts again
                self._forget()
                return
            for key in keys:
                self._generations.pop(key.decode() if isinstance(key, bytes) else str(key), None)
            self._epoch += 1
        elif kind == "pong":
            self._pong_at = now
        elif kind == "subscribe":
            self._subscribed = True
            self._pong_at = now
            self._forget()  # nothing learnt before this point is trusted

    def _open(self) -> None:
        """Open the tracking connection (in a thread of its own) and hand it over unless one is already there."""
        pid, conn = os.getpid(), None
        try:
            client = self.redis_conn.client()
            if not isinstance(client, redis.Redis):  # a Cluster: init_app never makes a near cache for one
                raise ResponseError("client tracking through a Redis Cluster client")
            pool = client.connection_pool  # under Sentinel: connections that ask the sentinels for the master
            # RESP2 whatever the client speaks: the messages are then plain replies on this connection (RESP3
            # would make them pushes, which redis-py's parser swallows), and nothing checks health but PING.
            conn = pool.connection_class(**{**pool.connection_kwargs, "protocol": 2, "health_check_interval": 0})
            conn.connect()
            conn.send_command("CLIENT", "ID")
            own_id = conn.read_response()
            tracking = ["CLIENT", "TRACKING", "ON", "REDIRECT", own_id, "BCAST"]
            for prefix in prefixes(self.database):
                tracking += ["PREFIX", prefix]
            conn.send_command(*tracking)
            conn.read_response()
            conn.send_command("SUBSCRIBE", CHANNEL)
        except (RedisError, OSError) as exc:
            if conn is not None:
                with contextlib.suppress(RedisError, OSError):
                    conn.disconnect()
            if isinstance(exc, ResponseError):
                log.warning("near cache off: Redis refused client tracking (%s); every hit is a round trip", exc)
                self.unsupported = True
            else:
                log.info("near cache: cannot open the tracking connection (%s); retrying", type(exc).__name__)
            return
        with self._lock:
            if self._conn is None and self._pid == pid:
                now = time.monotonic()
                self._conn, self._ping_at, self._pong_at = conn, now, now
                return  # the subscription is confirmed by a message read like any other (_handle)
        with contextlib.suppress(RedisError, OSError):
            conn.disconnect()

    def _close(self) -> None:
        conn, self._conn, self._subscribed = self._conn, None, False
        self._forget()
        if conn is not None:
            with contextlib.suppress(RedisError, OSError):
                conn.disconnect()
