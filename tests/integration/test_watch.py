"""``restengine watch`` against the real database server and a real redis-server.

Writes here go through plain PyMongo, bypassing RestEngine entirely, the way
legacy code writes behind the API's back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import bson
import pytest
import redis
from flask.testing import FlaskClient
from pymongo import MongoClient

import restengine.db
from restengine import create_app
from restengine.cache import generation_key
from restengine.cache.watch import Watcher, token_key
from restengine.config import Settings, load_settings
from tests.integration.api_helpers import customer, legacy_registry
from tests.keys import TEST_SECRET

SERVED = ("customers", "orders")


def settings_for(mongodb_uri: str, redis_url: str) -> Settings:
    return load_settings(
        {"MONGODB_URI": mongodb_uri, "REDIS_URL": redis_url, "RESTENGINE_DOCUMENTS": "tests.legacy_models"}
    )


@pytest.fixture
def rdb(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    yield client
    client.close()


@pytest.fixture
def mongo(mongodb_uri: str) -> Iterator[Any]:
    """The test's database through plain PyMongo: no RestEngine, no MongoEngine."""
    client: MongoClient[dict[str, Any]] = MongoClient(mongodb_uri)
    yield client.get_default_database()
    client.close()


def generations(rdb: redis.Redis, database: str, collections: Iterable[str]) -> dict[str, int]:
    return {c: int(rdb.get(generation_key(database, c)) or 0) for c in collections}


def eventually(check: Callable[[], bool], timeout: float = 2.0) -> float:
    """Seconds until ``check()`` held; fails after ``timeout``."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, f"not within {timeout}s"
        time.sleep(0.01)
    return time.monotonic() - start


@contextmanager
def watching(settings: Settings, rdb: redis.Redis, collections: Iterable[str] | None = SERVED) -> Iterator[Watcher]:
    """A watcher running on a thread, ready (stream open, start-up bumps done); stopped on exit."""
    watcher = Watcher(settings, rdb, collections=collections)
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,), name="test-watcher")
    thread.start()
    try:
        assert watcher.ready.wait(10), "the watcher did not open its change stream"
        yield watcher
    finally:
        stop.set()
        thread.join(5)
        assert not thread.is_alive(), "the watcher did not honour stop"


@pytest.mark.parametrize("write", ["insert", "update", "delete"])
def test_a_write_bypassing_everything_bumps_its_collection_only(
    mongodb_uri: str, redis_url: str, rdb: redis.Redis, mongo: Any, write: str
) -> None:
    settings = settings_for(mongodb_uri, redis_url)
    database = settings.database_name()
    watched = (*SERVED, "products")
    mongo.customers.insert_one({"_id": "ABC123", "name": "Ada"})
    with watching(settings, rdb):
        before = generations(rdb, database, watched)
        assert before["customers"] >= 1 and before["orders"] >= 1, "first start invalidates every served collection"
        {
            "insert": lambda: mongo.customers.insert_one({"_id": "DEF456", "name": "Dee"}),
            "update": lambda: mongo.customers.update_one({"_id": "ABC123"}, {"$set": {"name": "Ann"}}),
            "delete": lambda: mongo.customers.delete_one({"_id": "ABC123"}),
        }[write]()
        eventually(lambda: generations(rdb, database, ["customers"])["customers"] > before["customers"])
        time.sleep(0.2)  # a wrong bump of another collection would have landed by now
        assert generations(rdb, database, watched) == {**before, "customers": before["customers"] + 1}


def test_a_batch_bumps_each_collection_once(mongodb_uri: str, redis_url: str, rdb: redis.Redis, mongo: Any) -> None:
    settings = settings_for(mongodb_uri, redis_url)
    database = settings.database_name()
    with watching(settings, rdb):
        before = generations(rdb, database, ["customers"])["customers"]
        mongo.customers.insert_many([{"_id": f"C{i:05d}"} for i in range(200)])
        eventually(lambda: generations(rdb, database, ["customers"])["customers"] > before)
        time.sleep(0.3)
        bumps = generations(rdb, database, ["customers"])["customers"] - before
        assert 1 <= bumps < 20, f"{bumps} bumps for 200 inserts: events are not batched"


def test_restart_resumes_from_the_stored_token(mongodb_uri: str, redis_url: str, rdb: redis.Redis, mongo: Any) -> None:
    settings = settings_for(mongodb_uri, redis_url)
    database = settings.database_name()
    with watching(settings, rdb):
        before = generations(rdb, database, ["customers"])
        mongo.customers.insert_one({"_id": "ABC123", "name": "Ada"})
        eventually(lambda: generations(rdb, database, ["customers"]) != before)
    stored = rdb.get(token_key(database))
    before = generations(rdb, database, [*SERVED, "audit"])
    # written while no watcher runs: "audit" is not a served collection, so only
    # resuming from the stored token can explain a bump of it
    mongo.audit.insert_one({"event": "legacy write while the watcher is down"})
    with watching(settings, rdb):
        eventually(lambda: generations(rdb, database, ["audit"])["audit"] > before["audit"])
        time.sleep(0.2)
        after = generations(rdb, database, [*SERVED, "audit"])
        assert after == {**before, "audit": before["audit"] + 1}, "resumed: nothing else was invalidated"
        assert rdb.get(token_key(database)) != stored, "the token moved on"


@pytest.mark.parametrize(
    "bogus",
    [
        bson.encode({"_data": "826000000000000000012B022C0100296E5A1004DEADBEEF"}),  # unknown to the server
        b"\x00not a bson document",  # unreadable
    ],
    ids=["unknown-token", "garbage"],
)
def test_an_unusable_token_invalidates_everything_and_keeps_watching(
    mongodb_uri: str, redis_url: str, rdb: redis.Redis, mongo: Any, bogus: bytes
) -> None:
    settings = settings_for(mongodb_uri, redis_url)
    database = settings.database_name()
    rdb.set(token_key(database), bogus)
    with watching(settings, rdb):
        assert generations(rdb, database, SERVED) == {"customers": 1, "orders": 1}
        mongo.audit.insert_one({"x": 1})
        eventually(lambda: generations(rdb, database, ["audit"])["audit"] == 1)
        stored = rdb.get(token_key(database))
        assert stored is not None and stored != bogus
        assert "_data" in bson.decode(stored)


def test_drop_invalidates_everything_and_the_stream_goes_on(
    mongodb_uri: str, redis_url: str, rdb: redis.Redis, mongo: Any
) -> None:
    settings = settings_for(mongodb_uri, redis_url)
    database = settings.database_name()
    mongo.audit.insert_one({"x": 1})
    with watching(settings, rdb):
        before = generations(rdb, database, [*SERVED, "audit"])
        mongo.audit.drop()
        eventually(lambda: generations(rdb, database, ["orders"])["orders"] > before["orders"])
        assert generations(rdb, database, ["audit"])["audit"] > before["audit"]
        customers = generations(rdb, database, ["customers"])["customers"]
        mongo.customers.insert_one({"_id": "ABC123"})
        eventually(lambda: generations(rdb, database, ["customers"])["customers"] > customers)


def test_cli_watch_requires_redis(mongodb_uri: str, repo_root: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "restengine.ops.cli", "watch"],
        env={**env, "MONGODB_URI": mongodb_uri},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=repo_root,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode != 0
    assert "REDIS_URL" in result.stderr and "Traceback" not in result.stderr


def test_cli_watch_bumps_and_stops_cleanly_on_sigterm(
    mongodb_uri: str, redis_url: str, rdb: redis.Redis, mongo: Any, repo_root: Path, tmp_path: Path
) -> None:
    database = settings_for(mongodb_uri, redis_url).database_name()
    env = {
        **os.environ,
        "MONGODB_URI": mongodb_uri,
        "REDIS_URL": redis_url,
        "RESTENGINE_DOCUMENTS": "tests.legacy_models",
    }
    log_path = tmp_path / "watch.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "restengine.ops.cli", "watch"],
            env=env,
            cwd=repo_root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        # started: the first start invalidates every served collection and stores a token
        eventually(lambda: rdb.get(token_key(database)) is not None, timeout=30)
        assert generations(rdb, database, SERVED) == {"customers": 1, "orders": 1}, log_path.read_text()
        mongo.customers.insert_one({"_id": "ABC123", "name": "Ada"})
        eventually(lambda: generations(rdb, database, ["customers"])["customers"] == 2)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0, log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def cached_names(client: FlaskClient) -> tuple[str, set[str]]:
    response = client.get("/api/customers")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.headers.get("X-Cache", ""), {item["name"] for item in response.get_json()["items"]}


@contextmanager
def cache_app(mongodb_uri: str, redis_url: str, **config: str) -> Iterator[FlaskClient]:
    with legacy_registry():
        app = create_app(
            {
                "MONGODB_URI": mongodb_uri,
                "REDIS_URL": redis_url,
                "RESTENGINE_DOCUMENTS": "tests.legacy_models",
                "RESTENGINE_SECRET_KEY": TEST_SECRET,
                **config,
            }
        )
        try:
            customer("ABC123", "Ada")
            yield app.test_client()
        finally:
            restengine.db.close_all()


def test_a_legacy_write_is_never_served_stale_with_the_watcher(
    mongodb_uri: str, redis_url: str, rdb: redis.Redis, mongo: Any
) -> None:
    with cache_app(mongodb_uri, redis_url) as client, watching(settings_for(mongodb_uri, redis_url), rdb, None):
        assert cached_names(client) == ("miss", {"Ada"})
        assert cached_names(client) == ("hit", {"Ada"})
        mongo.customers.update_one({"_id": "ABC123"}, {"$set": {"name": "Ann"}})
        seen: list[tuple[str, set[str]]] = []

        def fresh() -> bool:
            seen.append(cached_names(client))
            return seen[-1][1] == {"Ann"}

        eventually(fresh)
        assert seen[-1] == ("miss", {"Ann"})
        assert all(names == {"Ada"} for _, names in seen[:-1])
        assert cached_names(client) == ("hit", {"Ann"})


def test_without_the_watcher_the_ttl_bounds_staleness(mongodb_uri: str, redis_url: str, mongo: Any) -> None:
    with cache_app(mongodb_uri, redis_url, RESTENGINE_CACHE_TTL="2") as client:
        assert cached_names(client) == ("miss", {"Ada"})
        written = time.monotonic()
        mongo.customers.update_one({"_id": "ABC123"}, {"$set": {"name": "Ann"}})
        assert cached_names(client) == ("hit", {"Ada"}), "nothing invalidates a write that bypasses the API"
        time.sleep(max(0.0, written + 1.0 - time.monotonic()))
        assert cached_names(client) == ("hit", {"Ada"})
        time.sleep(max(0.0, written + 3.0 - time.monotonic()))
        assert cached_names(client) == ("miss", {"Ann"})


def cached_item(client: FlaskClient, code: str) -> tuple[str, str]:
    response = client.get(f"/api/customers/{code}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.headers.get("X-Cache", ""), response.get_json()["name"]


def test_a_legacy_write_invalidates_that_item_only(
    mongodb_uri: str, redis_url: str, rdb: redis.Redis, mongo: Any
) -> None:
    with cache_app(mongodb_uri, redis_url) as client, watching(settings_for(mongodb_uri, redis_url), rdb, None):
        customer("DEF456", "Dee")
        time.sleep(0.3)  # the watcher's bumps for this save have landed
        for code in ("ABC123", "DEF456"):
            cached_item(client, code)
        assert cached_item(client, "ABC123") == ("hit", "Ada")
        mongo.customers.update_one({"_id": "ABC123"}, {"$set": {"name": "Ann"}})
        eventually(lambda: cached_item(client, "ABC123") == ("miss", "Ann"))
        assert cached_item(client, "DEF456") == ("hit", "Dee"), "another customer's cached read stays"
        assert cached_names(client) == ("miss", {"Ann", "Dee"})


def test_a_write_the_cache_cannot_key_invalidates_every_item(
    mongodb_uri: str, redis_url: str, rdb: redis.Redis, mongo: Any
) -> None:
    with cache_app(mongodb_uri, redis_url) as client, watching(settings_for(mongodb_uri, redis_url), rdb, None):
        cached_item(client, "ABC123")
        time.sleep(0.2)
        assert cached_item(client, "ABC123") == ("hit", "Ada")
        mongo.customers.insert_one({"_id": 1.5, "name": "A float key"})  # no item token for a double
        eventually(lambda: cached_item(client, "ABC123")[0] == "miss")
