"""The near cache (``restengine.cache.near``) against a real redis-server: hot entries answered from the worker's
memory, and every way Redis can change a generation reaching it before the next answer."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest
import redis

from restengine.cache.backends import BUMP_ITEMS
from restengine.cache.keys import entry_base
from restengine.cache.near import NearCache
from restengine.cache.store import Entry, ResponseCache
from restengine.config import load_settings
from restengine.redisconn import RedisConnection
from tests.conftest import RedisServer

BASE = entry_base("db", "re:c:books:x")  # in the database's hash slot, as ResponseCache.lookup puts it


@pytest.fixture
def settings(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("MONGODB_URI", "mongodb://127.0.0.1:1/db")
    return load_settings()


_made: list[ResponseCache] = []
_clients: list[redis.Redis] = []


def worker(settings: object, near: bool = True) -> ResponseCache:
    """One worker's response cache on the shared Redis (``near``: with its near cache); closed after the test."""
    conn = RedisConnection(settings)  # type: ignore[arg-type]
    cache = ResponseCache(settings, conn)  # type: ignore[arg-type]
    cache.database = "db"
    if near:
        cache.near = NearCache(conn, "db", 1 << 20)
    _made.append(cache)
    return cache


@pytest.fixture(autouse=True)
def _close_workers() -> Iterator[None]:
    yield
    while _made:
        cache = _made.pop()
        if cache.near is not None:
            cache.near._close()
        cache.near = None
        cache.backend.conn.client().close()  # type: ignore[attr-defined]
    while _clients:
        _clients.pop().close()


@pytest.fixture
def reader(settings: object) -> ResponseCache:
    return worker(settings)


def build(cache: ResponseCache, body: bytes, pk: str = "abc") -> str:
    """Read ``BASE`` (the item ``pk``) through ``cache``, building ``body`` on a miss; the X-Cache status."""
    generations = cache.item_generations("books", pk)
    return cache.read(BASE, "books", generations, 60, lambda: Entry(body, '"e"', {}, 0)).status


def current(cache: ResponseCache, pk: str = "abc") -> bytes | None:
    found = cache.lookup(BASE, cache.item_generations("books", pk))
    assert found is not None
    return None if found.entry is None else found.entry.body


def lookups(redis_url: str) -> int:
    """Lookups Redis ran so far (the Lua script of every cache read that reaches it)."""
    with redis.Redis.from_url(redis_url) as client:
        stats = client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k.startswith("cmdstat_eval"))


def warm(cache: ResponseCache, body: bytes = b"v1") -> None:
    """Build the entry, and look it up until the near cache is subscribed and has learnt it."""
    build(cache, body)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        assert current(cache) == body
        assert cache.near is not None
        known, _ = cache.near.find(BASE, cache.item_generations("books", "abc"))
        if known is not None:
            return
        time.sleep(0.01)
    raise AssertionError("the near cache never answered")


def test_a_hot_entry_is_answered_without_a_round_trip(reader: ResponseCache, settings: object, redis_url: str) -> None:
    warm(reader)
    before = lookups(redis_url)
    for _ in range(50):
        assert current(reader) == b"v1"
    assert lookups(redis_url) == before, "no lookup reached Redis"
    without = worker(settings, near=False)
    assert current(without) == b"v1"
    assert lookups(redis_url) == before + 1, "the same lookup without a near cache is a round trip"


def test_a_write_by_another_worker_is_seen_by_the_very_next_read(reader: ResponseCache, settings: object) -> None:
    writer = worker(settings, near=False)
    warm(reader)
    for round_ in range(100):
        writer.invalidate_items("books", ["abc"])  # another worker's write, acknowledged to it by Redis
        assert current(reader) is None, f"round {round_}: the entry from before the write"
        assert build(reader, b"v%d" % round_) == "miss"
        assert current(reader) == b"v%d" % round_
    writer.invalidate(["books"])  # a collection-wide write
    assert current(reader) is None
    build(reader, b"after")
    assert current(reader) == b"after"


def test_the_watcher_and_an_expired_generation_reach_it(reader: ResponseCache, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    _clients.append(client)
    warm(reader)
    keys = reader.keys("books")
    # What ``restengine watch`` sends for a write made outside the API.
    client.register_script(BUMP_ITEMS)(keys=[keys.generation, keys.life, keys.item("sabc")])
    assert current(reader) is None
    build(reader, b"v2")
    assert current(reader) == b"v2"
    # An item generation running out (in life, once no entry it names can be fresh): Redis reads it as 0 now,
    # so memory must stop naming entries by it too.
    client.pexpire(keys.item("sabc"), 1)
    time.sleep(0.05)
    assert client.get(keys.item("sabc")) is None
    assert reader.near is not None
    assert reader.near.find(BASE, reader.item_generations("books", "abc"))[0] is None


def test_this_process_writing_forgets_at_once_even_when_redis_cannot_hear_it(
    reader: ResponseCache, redis_server: RedisServer
) -> None:
    warm(reader)
    pid = redis_server.process.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        reader.invalidate_items("books", ["abc"])  # the bump is owed; this process knows anyway
        assert reader.lookup(BASE, reader.item_generations("books", "abc")) is None, "not from memory: Redis"
    finally:
        os.kill(pid, signal.SIGCONT)


def test_a_frozen_redis_stops_answers_from_memory_within_the_silence(
    settings: object, redis_server: RedisServer
) -> None:
    """Another worker's write cannot be heard while Redis is frozen: memory answers for SILENCE at most."""
    reader = worker(settings)
    warm(reader)
    assert reader.near is not None
    pid = redis_server.process.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        while reader.near.find(BASE, reader.item_generations("books", "abc"))[0] is not None:
            assert time.monotonic() - started < 3, "memory kept answering with Redis silent"
            time.sleep(0.05)
    finally:
        os.kill(pid, signal.SIGCONT)


def test_flushall_and_a_restart_forget_everything(reader: ResponseCache, redis_server: RedisServer) -> None:
    assert reader.near is not None
    warm(reader)
    redis_server.flush()
    assert current(reader) is None, "FLUSHALL: generations start again, so old entries could collide"
    warm(reader, b"v2")
    redis_server.stop()
    redis_server.start()
    generations = reader.item_generations("books", "abc")
    assert reader.near.find(BASE, generations) == (None, None), "the connection died with Redis: not from memory"
    warm(reader, b"v3")


def test_a_redis_refusing_client_tracking_leaves_every_hit_a_round_trip(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A Redis that refuses CLIENT (an ACL, a proxy, Redis before 6): the near cache is off, reads work."""
    admin = redis.Redis.from_url(redis_url)
    _clients.append(admin)
    admin.acl_setuser("limited", enabled=True, passwords=["+secret"], keys=["*"], commands=["+@all", "-client"])
    try:
        monkeypatch.setenv("REDIS_URL", redis_url.replace("redis://", "redis://limited:secret@"))
        monkeypatch.setenv("MONGODB_URI", "mongodb://127.0.0.1:1/db")
        cache = worker(load_settings())
        assert cache.near is not None
        build(cache, b"v1")
        deadline = time.monotonic() + 5
        while not cache.near.unsupported:  # the connection is opened aside, and refused
            assert time.monotonic() < deadline, "never tried"
            assert current(cache) == b"v1"
            time.sleep(0.01)
        before = lookups(redis_url)
        for _ in range(5):
            assert current(cache) == b"v1"
        assert lookups(redis_url) == before + 5, "every read is a round trip"
        assert "near cache off: Redis refused client tracking" in caplog.text
    finally:
        admin.acl_deluser("limited")


def test_what_a_lookup_read_before_a_write_is_not_learnt_after_it(reader: ResponseCache, settings: object) -> None:
    """The race of every client-side cache: a lookup's answer (read before a write) arriving after the write's
    invalidation was read must not become what memory knows."""
    warm(reader)
    assert reader.near is not None
    generations = reader.item_generations("books", "abc")
    old = reader.lookup(BASE, generations)  # from memory: the full key of before the write
    assert old is not None and old.entry is not None
    reader.near.forget(generations)
    _, epoch = reader.near.find(BASE, generations)  # a request misses memory and asks Redis...
    worker(settings, near=False).invalidate_items("books", ["abc"])  # ...a write lands meanwhile...
    reader.near.find(BASE, generations)  # ...another request reads its invalidation...
    reader.near.learn(BASE, generations, old, epoch)  # ...then the first one's answer arrives
    assert reader.near.find(BASE, generations)[0] is None
    assert current(reader) is None
