"""REDIS_URL's forms (one server, Sentinel, Cluster) and the cache's keys sharing one Redis Cluster hash slot."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from restengine.cache.keys import CollectionKeys, entry_base, generation_key, slot_tag
from restengine.cache.near import prefixes
from restengine.config import load_settings
from restengine.config_values import ConfigError, parse_redis_url
from restengine.ratelimit import storage_for
from restengine.redisconn import RedisConnection
from restengine.redisurl import RedisTarget, parse


def test_a_sentinel_url_names_the_sentinels_the_service_the_db_and_the_password() -> None:
    target = parse("redis+sentinel://:s%40cret@s1:26379,s2:26380,10.0.0.3:26381/mymaster/2")
    assert target == RedisTarget(
        "sentinel",
        "redis+sentinel://:s%40cret@s1:26379,s2:26380,10.0.0.3:26381/mymaster/2",
        (("s1", 26379), ("s2", 26380), ("10.0.0.3", 26381)),
        "mymaster",
        2,
        None,
        "s@cret",
    )
    assert target.locations() == "s1:26379,s2:26380,10.0.0.3:26381"
    assert target.auth() == {"password": "s@cret"}


def test_a_sentinel_url_without_a_db_uses_db_0_and_a_user_is_kept() -> None:
    target = parse("redis+sentinel://app:pw@s1:26379/mymaster")
    assert (target.service, target.db, target.auth()) == ("mymaster", 0, {"username": "app", "password": "pw"})


def test_a_cluster_url_names_its_nodes() -> None:
    target = parse("redis+cluster://:pw@n1:7000,n2:7001")
    assert (target.kind, target.nodes, target.password) == ("cluster", (("n1", 7000), ("n2", 7001)), "pw")
    assert parse("redis+cluster://n1:7000/").nodes == (("n1", 7000),)


@pytest.mark.parametrize("url", ["redis://r:6379/1", "rediss://:pw@r:6380/0", "unix:///run/redis.sock"])
def test_one_server_urls_are_still_accepted(url: str) -> None:
    assert parse_redis_url("REDIS_URL", url) == url
    assert parse(url).kind == "single"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://localhost:6379", "must be a redis://, rediss://, unix://, redis+sentinel:// or redis+cluster:// URL"),
        ("redis+sentinel://s1:26379", "needs /<service name>[/<db>] after the sentinels"),
        ("redis+sentinel://s1:26379/", "needs /<service name>[/<db>] after the sentinels"),
        ("redis+sentinel://s1:26379/mymaster/0/extra", "needs /<service name>[/<db>] after the sentinels"),
        ("redis+sentinel://s1:26379/mymaster/zero", "database must be a number, got 'zero'"),
        ("redis+sentinel://s1/mymaster", "needs host:port for every node, got 's1'"),
        ("redis+sentinel://s1:26379,,s2:26379/mymaster", "needs host:port for every node, got ''"),
        ("redis+sentinel:///mymaster", "needs host:port for every node"),
        ("redis+sentinel://s1:port/mymaster", "needs host:port for every node, got 's1:port'"),
        ("redis+cluster://n1:7000/1", "takes no path (a cluster has database 0 only)"),
        ("redis+cluster://n1:7000,n2", "needs host:port for every node, got 'n2'"),
        ("redis+cluster://", "needs host:port for every node"),
    ],
)
def test_malformed_urls_are_refused_naming_the_setting(url: str, reason: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_redis_url("REDIS_URL", url)
    message = str(raised.value)
    assert message.startswith("REDIS_URL: ") and reason in message, message


def test_a_refused_url_never_shows_its_password() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_redis_url("REDIS_URL", "redis+sentinel://:hunter2@s1:26379")
    assert "hunter2" not in str(raised.value) and ":***@s1:26379" in str(raised.value)


def test_loading_settings_refuses_a_malformed_sentinel_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis+sentinel://s1:26379")
    with pytest.raises(ConfigError, match=r"^REDIS_URL: redis\+sentinel:// needs /<service name>"):
        load_settings()


def _settings(monkeypatch: pytest.MonkeyPatch, url: str) -> object:
    monkeypatch.setenv("REDIS_URL", url)
    monkeypatch.setenv("MONGODB_URI", "mongodb://127.0.0.1:1/db")
    return load_settings()


def test_the_clients_and_the_rate_limit_storage_are_made_without_connecting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing listens on port 1: making them must not connect (the app is made before gunicorn forks)."""
    sentinel = _settings(monkeypatch, "redis+sentinel://:pw@127.0.0.1:1,127.0.0.1:2/mymaster/3")
    client = RedisConnection(sentinel).client()  # type: ignore[arg-type]
    kwargs = client.connection_pool.connection_kwargs  # type: ignore[union-attr]
    assert (kwargs["db"], kwargs["password"]) == (3, "pw")
    storage, shared = storage_for(sentinel)  # type: ignore[arg-type]
    assert shared and storage.service_name == "mymaster"  # type: ignore[attr-defined]
    assert storage.storage.connection_pool.connection_kwargs["db"] == 3  # type: ignore[attr-defined]
    cluster = _settings(monkeypatch, "redis+cluster://127.0.0.1:1")
    storage, shared = storage_for(cluster)  # type: ignore[arg-type]
    assert shared and storage.storage is None  # type: ignore[attr-defined]


def test_an_unreachable_cluster_is_a_redis_connection_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import redis

    cluster = _settings(monkeypatch, "redis+cluster://127.0.0.1:1")
    with pytest.raises(redis.ConnectionError):
        RedisConnection(cluster).client()  # type: ignore[arg-type]
    storage, _ = storage_for(cluster)  # type: ignore[arg-type]
    with pytest.raises(redis.ConnectionError):
        storage.incr("k", 60)


@pytest.mark.parametrize("database", ["shop", "t_0123456789ab", "a.b", "with{brace", "with}brace", "{x}"])
def test_every_key_of_one_lookup_or_bump_is_in_one_hash_slot(database: str) -> None:
    """Redis Cluster runs a script only on keys of one slot: what the cache's Lua scripts get (KEYS) and build."""
    books, authors = CollectionKeys.of(database, "books"), CollectionKeys.of(database, "authors")
    base = entry_base(database, "re:c:books:0123abcd")
    full = f"{base}:3.7"
    looked_up = [books.generation, authors.generation, books.documents, books.item("o65a1"), full, f"{full}:lock"]
    put = [full, books.life]
    bumped = [books.generation, books.life, books.item("o65a1"), books.item("s" + "x" * 64)]
    keys = [*looked_up, *put, *bumped, generation_key(database, "orders")]
    assert len({key_slot(key.encode()) for key in keys}) == 1, keys
    other = "other" if database != "other" else "another"
    assert key_slot(generation_key(other, "books").encode()) != key_slot(books.generation.encode())


def test_the_tag_keeps_databases_apart_and_the_near_cache_prefixes_disjoint() -> None:
    assert slot_tag("shop") == "{shop}" and slot_tag("a}b").startswith("{") and "}" not in slot_tag("a}b")[1:-1]
    assert entry_base("shop", entry_base("shop", "re:c:x")) == "re:{shop}:c:x"
    names = prefixes("shop") + prefixes("sho") + prefixes("shop.x")
    for one in names:
        assert [other for other in names if other != one and other.startswith(one)] == []
    keys = CollectionKeys.of("shop", "books")
    assert [p for p in prefixes("shop") if keys.item("o1").startswith(p)] == ["re:{shop}:gi:"]
    assert [p for p in prefixes("shop") if keys.generation.startswith(p)] == ["re:{shop}:g:"]
    assert [p for p in prefixes("shop") if keys.documents.startswith(p)] == ["re:{shop}:gd:"]


def test_unreachable_sentinels_fail_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each sentinel is asked once (redis-py's default retry would sleep up to 21 s before MasterNotFoundError)."""
    import time

    import redis

    settings = _settings(monkeypatch, "redis+sentinel://127.0.0.1:1,127.0.0.1:2,127.0.0.1:3/mymaster")
    storage, _ = storage_for(settings)  # type: ignore[arg-type]
    for call in (RedisConnection(settings).client().ping, lambda: storage.incr("k", 60)):  # type: ignore[arg-type]
        started = time.monotonic()
        with pytest.raises(redis.ConnectionError):  # MasterNotFoundError is one
            call()
        assert time.monotonic() - started < 1.0
