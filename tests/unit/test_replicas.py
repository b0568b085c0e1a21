"""Replica sets without a server: the settings' parsing, the write concern the client gets, where lists go."""

from __future__ import annotations

from typing import Any

import mongoengine
import pytest
from pymongo.read_preferences import Primary, SecondaryPreferred

from restengine import db, replicas
from restengine.config import ConfigError, load_settings


def settings(**overrides: Any) -> Any:
    return load_settings(overrides, environ={})


# ------------------------------------------------------------ settings


def test_list_read_preference_defaults_to_primary_without_staleness() -> None:
    loaded = settings()
    assert loaded.list_read_preference == "primary"
    assert loaded.max_staleness_s is None


@pytest.mark.parametrize(
    ("raw", "mode"),
    [
        ("secondaryPreferred", "secondaryPreferred"),
        ("SECONDARYPREFERRED", "secondaryPreferred"),
        (" nearest ", "nearest"),
        ("primarypreferred", "primaryPreferred"),
        ("secondary", "secondary"),
        ("primary", "primary"),
    ],
)
def test_read_preference_modes_are_spelled_as_mongodb_does(raw: str, mode: str) -> None:
    assert settings(RESTENGINE_LIST_READ_PREFERENCE=raw).list_read_preference == mode


@pytest.mark.parametrize("raw", ["secondaries", "", "tagged"])
def test_an_unknown_read_preference_is_refused_naming_the_setting_and_the_choices(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings(RESTENGINE_LIST_READ_PREFERENCE=raw)
    assert str(caught.value) == (
        "RESTENGINE_LIST_READ_PREFERENCE: expected one of primary, primaryPreferred, secondary, "
        f"secondaryPreferred, nearest, got {raw!r}"
    )


@pytest.mark.parametrize(("raw", "value"), [("90", 90), ("600", 600), (120, 120), ("", None), ("off", None)])
def test_max_staleness_is_seconds_from_90_or_unset(raw: Any, value: int | None) -> None:
    assert settings(RESTENGINE_MAX_STALENESS_S=raw).max_staleness_s == value


def test_max_staleness_under_the_servers_minimum_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        settings(RESTENGINE_MAX_STALENESS_S="30")
    assert str(caught.value) == (
        "RESTENGINE_MAX_STALENESS_S: must be >= 90 (the server's smallest maxStalenessSeconds), got 30"
    )


def test_max_staleness_that_is_not_a_number_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^RESTENGINE_MAX_STALENESS_S: expected an integer, got 'soon'$"):
        settings(RESTENGINE_MAX_STALENESS_S="soon")


def test_max_staleness_with_primary_reads_is_refused_when_the_app_is_built() -> None:
    with pytest.raises(ConfigError, match="RESTENGINE_MAX_STALENESS_S: only applies when"):
        replicas.ListReads("primary", 90)


# ------------------------------------------------------------ write concern


def test_writes_default_to_majority_and_retryable() -> None:
    assert db.write_defaults(["mongodb://a:1,b:2/shop?replicaSet=rs0"]) == {"w": "majority", "retryWrites": True}


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("mongodb://a/shop?w=1", {"retryWrites": True}),
        ("mongodb://a/shop?retryWrites=false", {"w": "majority"}),
        ("mongodb+srv://cluster.example.net/shop?W=2&RETRYWRITES=true", {}),
    ],
)
def test_an_explicit_write_option_in_the_uri_wins(uri: str, expected: dict[str, Any]) -> None:
    assert db.write_defaults([uri]) == expected


def test_an_explicit_write_option_given_to_the_client_wins() -> None:
    assert db.write_defaults(["mongodb://a/shop"], {"w": 1, "retrywrites": False}) == {}


def test_registered_client_writes_majority_retryably_unless_the_uri_says_otherwise() -> None:
    try:
        db.register(settings(MONGODB_URI="mongodb://127.0.0.1:1/shop"))
        client = db.get_database().client
        assert client.write_concern.document == {"w": "majority"}
        assert client.options.retry_writes is True
        db.register(settings(MONGODB_URI="mongodb://127.0.0.1:1/shop?w=1&retryWrites=false"))
        client = db.get_database().client
        assert client.write_concern.document == {"w": 1}
        assert client.options.retry_writes is False
    finally:
        db.close_all()


@pytest.mark.parametrize(
    ("theirs", "concern", "retry"),
    [
        ({"host": "mongodb://127.0.0.1:1/shop"}, {"w": "majority"}, True),
        ({"host": "mongodb://127.0.0.1:1/shop?w=1"}, {"w": 1}, True),
        ({"host": "mongodb://127.0.0.1:1/shop", "w": 2, "retryWrites": False}, {"w": 2}, False),
    ],
)
def test_an_adopted_connection_keeps_its_own_write_options(
    theirs: dict[str, Any], concern: dict[str, Any], retry: bool
) -> None:
    try:
        mongoengine.register_connection("default", uuidRepresentation="standard", **theirs)
        assert db.adopt(settings())
        client = db.get_database().client
        assert client.write_concern.document == concern
        assert client.options.retry_writes is retry
    finally:
        db.close_all()
        mongoengine.disconnect("default")


# ------------------------------------------------------------ where lists are read


class FakeRedis:
    def __init__(self, broken: bool = False) -> None:
        self.broken = broken
        self.keys: dict[str, tuple[bytes, int]] = {}

    def set(self, key: str, value: bytes, ex: int) -> None:
        if self.broken:
            raise ConnectionError("down")
        self.keys[key] = (value, ex)

    def exists(self, key: str) -> int:
        if self.broken:
            raise ConnectionError("down")
        return int(key in self.keys)


def test_lists_read_the_setting_but_the_primary_for_conditional_cached_and_recent_writers() -> None:
    reads = replicas.ListReads("secondaryPreferred", 90)
    chosen = reads.for_list(lambda: "addr:1", conditional=False, shared=False)
    assert isinstance(chosen, SecondaryPreferred) and chosen.max_staleness == 90
    assert isinstance(reads.for_list(lambda: "addr:1", conditional=True, shared=False), Primary)
    assert isinstance(reads.for_list(lambda: "addr:1", conditional=False, shared=True), Primary)
    reads.wrote("addr:1")
    assert isinstance(reads.for_list(lambda: "addr:1", conditional=False, shared=False), Primary)
    assert isinstance(reads.for_list(lambda: "addr:2", conditional=False, shared=False), SecondaryPreferred)


def test_the_window_covers_the_staleness_limit_and_its_measurement() -> None:
    assert replicas.ListReads("nearest", 90).window == 110
    assert replicas.ListReads("nearest", None).window == replicas.UNBOUNDED_WINDOW_S
    assert replicas.ListReads("nearest", None).preference.max_staleness == -1


def test_a_mark_is_one_redis_key_that_expires_with_the_window() -> None:
    redis = FakeRedis()
    replicas.ListReads("secondary", 100, lambda: redis).wrote("user:ann")
    assert redis.keys == {"restengine:wrote:user:ann": (b"1", 120)}
    other_worker = replicas.ListReads("secondary", 100, lambda: redis)
    assert isinstance(other_worker.for_list(lambda: "user:ann", conditional=False, shared=False), Primary)
    assert other_worker.for_list(lambda: "user:bob", conditional=False, shared=False).mode != Primary().mode


def test_when_redis_cannot_say_the_list_reads_the_primary() -> None:
    reads = replicas.ListReads("secondaryPreferred", None, lambda: FakeRedis(broken=True))
    assert isinstance(reads.for_list(lambda: "addr:9", conditional=False, shared=False), Primary)
    reads.wrote("addr:9")  # the failed SET is logged, not raised; this process still knows
    assert reads.writers.recent("addr:9")


def test_primary_lists_never_ask_who_calls() -> None:
    def caller() -> str:
        raise AssertionError("not needed")

    # the client's own preference (primary): no collection made per request either
    assert replicas.ListReads("primary", None).for_list(caller, conditional=False, shared=False) is None
