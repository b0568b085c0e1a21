"""``restengine watch``: invalidate cached reads for writes made behind the API's back.

The API bumps a collection's cache generation after each of its own writes
(:mod:`restengine.cache`). Legacy code writing straight to the database does
not, so its writes would stay invisible until the cache TTL. The watcher
follows a change stream on the served database and bumps the generation of
every collection an event names.

What it guarantees:

* Every write in the watched database (made through the API or not)
  invalidates the written document's cached reads and its collection's
  lists within about the batch window (:data:`BATCH_WINDOW`, 50 ms) after
  the change stream delivers it. Events without a ``documentKey`` (or with an
  ``_id`` the cache cannot key) invalidate the whole collection.
* While the watcher is down, nothing else invalidates those writes: the cache
  TTL (``RESTENGINE_CACHE_TTL``) bounds how stale a cached read can be.
* After each bumped batch the latest resume token is stored in Redis
  (``re:watch:<database>:token``). On restart the watcher resumes from it, so
  writes made while it was down are invalidated too. When it cannot resume
  (no token yet, the token is unknown or older than the server's history) it
  starts from now and invalidates every served collection, *after* the new
  stream is open, so no write falls in between.
* ``drop``, ``rename``, ``dropDatabase`` and ``invalidate`` events invalidate
  every served collection and the stream is reopened the same way.
* Delivery is at least once: a batch is bumped before its token is stored, so
  a crash in between only bumps some collections twice.

Database and Redis errors are logged and retried with a backoff (0.5 s
doubling to 5 s); the watcher never stops on its own, only when ``stop`` is set.

Deadlines (CSOT): the watcher uses its own PyMongo client, built with
:func:`restengine.db.client_options` but a 60 s ``timeoutMS`` instead of a
request's, and a short server selection timeout so a database that is down
is noticed (and retried) quickly. With ``timeoutMS`` set, PyMongo gives each
``try_next()`` its own full deadline and sends the awaiting ``getMore`` with
``maxTimeMS = maxAwaitTimeMS`` (:data:`AWAIT_MS`, 500 ms), far below
``timeoutMS``: CSOT never cuts a wait short, and a frozen server still fails
the call after 60 s instead of hanging forever. The stream is read on its own
thread, so batches close on a clock and ``stop`` is honoured within a fraction
of a second even while a call to the database hangs.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

import bson
from bson.errors import BSONError
from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError
from redis.exceptions import RedisClusterException, RedisError

from restengine import db
from restengine.cache.backends import BUMP_ITEMS
from restengine.cache.keys import ITEMS_MAX, PREFIX, CollectionKeys, item_token
from restengine.config import Settings

log = logging.getLogger(__name__)

BATCH_WINDOW = 0.05  # seconds a batch collects events before its collections are bumped
BATCH_MAX = 500  # events at most in one batch
AWAIT_MS = 500  # maxAwaitTimeMS of each getMore: how long the server holds an empty one
TIMEOUT_MS = 60_000  # the watcher client's timeoutMS (see the module docstring)
SERVER_SELECTION_MS = 2_000
BACKOFF_MIN = 0.5
BACKOFF_MAX = 5.0
HEALTHY = 10.0  # a stream that ran this long before failing starts the backoff over
TOKEN_REFRESH = 10.0  # seconds between stores of an idle stream's advancing resume token
REOPEN_EVENTS = frozenset({"drop", "rename", "dropDatabase", "invalidate"})


def token_key(database: str) -> str:
    """The Redis key holding the watcher's last resume token for ``database``."""
    return f"{PREFIX}watch:{database}:token"


def served_collections(settings: Settings) -> frozenset[str]:
    """The collections of the Document classes ``RESTENGINE_DOCUMENTS`` names (the demo's when unset)."""
    from restengine.documents import load_documents

    return frozenset(cls._get_collection_name() for cls in load_documents(settings.document_modules()))


class _CannotResume(Exception):
    """The server refused the stored resume token (unknown, or older than its history)."""


class _Tail(threading.Thread):
    """Opens one change stream and reads it on its own thread, handing what it reads to a queue.

    Items: ``("opened", token)``, ``("change", event, token)``, ``("token", token)``
    (an idle stream's resume token moved on) and ``("error", exc)``.
    """

    def __init__(self, database: Any, resume_after: Mapping[str, Any] | None) -> None:
        super().__init__(name="restengine-watch-stream", daemon=True)
        self.database = database
        self.resume_after = resume_after
        self.items: queue.Queue[tuple[Any, ...]] = queue.Queue(maxsize=BATCH_MAX * 4)
        self.halt = threading.Event()
        self.confirmed = False  # the server accepted resume_after (one getMore went through)

    def run(self) -> None:
        try:
            with self.database.watch(resume_after=self.resume_after, max_await_time_ms=AWAIT_MS) as stream:
                last = stream.resume_token
                self._put(("opened", last))
                while not self.halt.is_set():
                    change = stream.try_next()
                    self.confirmed = True
                    token = stream.resume_token
                    if change is not None:
                        self._put(("change", change, token))
                    elif token is not None and token != last:
                        self._put(("token", token))
                    last = token
                    if not stream.alive:  # invalidated: the caller reopens
                        self._put(("error", PyMongoError("change stream closed by the server")))
                        return
        except Exception as exc:  # handed to the watcher, which logs and retries
            self._put(("error", exc))

    def _put(self, item: tuple[Any, ...]) -> None:
        while not self.halt.is_set():
            try:
                self.items.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def stop(self) -> None:
        """Ask the thread to close its stream; wait about one getMore for it, no longer."""
        self.halt.set()
        self.join(AWAIT_MS / 1000 + 0.5)  # a hung call is cut off by closing the client afterwards


class Watcher:
    """Bumps the cache generation of every collection a change in the database names.

    ``collections`` are the served collections, bumped all at once when the
    watcher cannot know what changed; by default those of
    ``RESTENGINE_DOCUMENTS``. ``redis_client`` is any client
    :func:`restengine.redisconn.client_for_url` makes (Sentinel's follows the
    master: a failover is one more Redis error, retried). Run one
    watcher per database: more are harmless but redundant.
    """

    def __init__(self, settings: Settings, redis_client: Any, *, collections: Iterable[str] | None = None) -> None:
        self.settings = settings
        self.redis = redis_client
        self.collections = frozenset(served_collections(settings) if collections is None else collections)
        self.database_name = settings.database_name()
        self.token_key = token_key(self.database_name)
        self.ready = threading.Event()  # set once the first stream is open and the start-up bump is done
        # collections seen in events, not bumped yet: the written documents' item tokens, None for all
        self._owed: dict[str, set[str] | None] = {}
        self._token: Mapping[str, Any] | None = None  # everything up to it is bumped or in _owed
        self._loaded = False  # the stored token was read
        self._bump_all = False  # bump every served collection once the next stream is open
        self._stored_at = 0.0

    # ------------------------------------------------------------ public

    def run(self, stop: threading.Event) -> None:
        """Follow the database's changes until ``stop`` is set; never raises for database or Redis errors."""
        options = {
            **db.client_options(self.settings, timeout_ms=TIMEOUT_MS),
            "serverSelectionTimeoutMS": SERVER_SELECTION_MS,
        }
        client: MongoClient[dict[str, Any]] = MongoClient(self.settings.database_uri(), **options)
        database = client[self.database_name]
        delay = BACKOFF_MIN
        log.info("watching %s: %d served collections", self.database_name, len(self.collections))
        try:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    self._follow(database, stop)
                    delay = BACKOFF_MIN
                except _CannotResume as exc:
                    log.warning(
                        "cannot resume the change stream of %s (%s): starting from now, invalidating everything",
                        self.database_name,
                        exc,
                    )
                    self._token = None
                    self._bump_all = True
                except Exception as exc:  # PyMongoError, RedisError, or a bug: never give up invalidating
                    if time.monotonic() - started >= HEALTHY:
                        delay = BACKOFF_MIN
                    if isinstance(exc, (PyMongoError, RedisError, RedisClusterException, BSONError)):
                        log.warning("watcher: %s: %s; retrying in %.1fs", type(exc).__name__, exc, delay)
                    else:
                        log.exception("watcher: unexpected error; retrying in %.1fs", delay)
                    stop.wait(delay)
                    delay = min(delay * 2, BACKOFF_MAX)
        finally:
            client.close()
            log.info("watcher of %s stopped", self.database_name)

    # ------------------------------------------------------------ one stream

    def _follow(self, database: Any, stop: threading.Event) -> None:
        """Open a stream and apply its changes until ``stop``, an error, or an event that needs a reopen."""
        resume_after = self._resume_token()
        tail = _Tail(database, resume_after)
        tail.start()
        try:
            deadline: float | None = None  # when the open batch must be bumped
            events = 0
            while not stop.is_set():
                timeout = 0.2 if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    item = tail.items.get(timeout=timeout)
                except queue.Empty:
                    item = None
                if item is not None:
                    kind = item[0]
                    if kind == "error":
                        self._flush()  # what was read before the error is owed anyway
                        exc = item[1]
                        if resume_after is not None and not tail.confirmed and isinstance(exc, OperationFailure):
                            raise _CannotResume(str(exc)) from exc
                        raise exc
                    if kind == "opened":
                        self._opened(item[1])
                        continue
                    if kind == "token":
                        self._idle_token(item[1])
                        continue
                    change, token = item[1], item[2]
                    reopen = self._apply(change)
                    self._token = token
                    if reopen:
                        self._flush()
                        log.info("%s event: reopening the change stream", change.get("operationType"))
                        self._token = None
                        self._bump_all = True
                        return
                    events += 1
                    if deadline is None:
                        deadline = time.monotonic() + BATCH_WINDOW
                if deadline is not None and (events >= BATCH_MAX or time.monotonic() >= deadline):
                    self._flush()
                    deadline, events = None, 0
            self._flush()
        finally:
            tail.stop()

    def _resume_token(self) -> Mapping[str, Any] | None:
        """Where to start: the token in memory (after an error), else the stored one, else now."""
        if self._token is not None or self._loaded or self._bump_all:
            return self._token
        raw = self.redis.get(self.token_key)
        self._loaded = True
        if raw is None:
            log.info("no stored resume token for %s: starting from now, invalidating everything", self.database_name)
            self._bump_all = True
            return None
        try:
            return bson.decode(raw)
        except (BSONError, ValueError) as exc:
            raise _CannotResume(f"stored token unreadable: {exc}") from exc

    def _opened(self, token: Mapping[str, Any] | None) -> None:
        """The stream is open: now (not before) bump everything when nobody knows what changed."""
        if token is not None and self._token is None:
            self._token = token
        if self._bump_all:
            self._owed.update(dict.fromkeys(self.collections))
            self._flush()
            self._bump_all = False
        self.ready.set()

    def _apply(self, change: Mapping[str, Any]) -> bool:
        """Owe a bump to what ``change`` wrote; True when the stream must be reopened."""
        key = change.get("documentKey") or {}
        token = item_token(key["_id"]) if "_id" in key else None
        for field in ("ns", "to"):
            coll = (change.get(field) or {}).get("coll")
            if not coll:
                continue
            items = self._owed.get(coll, set())
            if items is None or token is None or len(items) >= ITEMS_MAX:
                self._owed[coll] = None  # the whole collection
            else:
                items.add(token)
                self._owed[coll] = items
        return change.get("operationType") in REOPEN_EVENTS

    def _idle_token(self, token: Mapping[str, Any]) -> None:
        """An idle stream moved on: store its token now and then, so it never falls out of the history."""
        self._token = token
        if not self._owed and time.monotonic() - self._stored_at >= TOKEN_REFRESH:
            self._store_token()

    # ------------------------------------------------------------ Redis

    def _flush(self) -> None:
        """Bump every owed generation (one pipeline), then store the token they lead up to."""
        if self._owed:
            pipe = self.redis.pipeline(transaction=False)
            for coll, items in sorted(self._owed.items()):
                keys = CollectionKeys.of(self.database_name, coll)
                if items is None:
                    pipe.incr(keys.generation)
                    pipe.incr(keys.documents)
                else:
                    # EVAL, not EVALSHA: a Cluster's pipeline cannot load a script a restarted node lost
                    script_keys = [keys.generation, keys.life, *map(keys.item, sorted(items))]
                    pipe.eval(BUMP_ITEMS, len(script_keys), *script_keys)
            pipe.execute()
            log.debug("invalidated %s", sorted(self._owed))
            self._owed.clear()
            self._store_token()

    def _store_token(self) -> None:
        if self._token is not None:
            self.redis.set(self.token_key, bson.encode(self._token))
            self._stored_at = time.monotonic()
