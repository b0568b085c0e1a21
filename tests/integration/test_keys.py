"""API keys against the real database server: ``restengine keys`` and :class:`KeyStore`."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from bson import json_util
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import PyMongoError

from restengine.auth import keys as keys_module
from restengine.auth.keys import COLLECTION, INVALID, KeyStore, looks_like_key
from restengine.auth.principal import InvalidCredentials, Principal
from restengine.ops.processes import free_port
from tests.integration.api_helpers import run_cli

KEY = re.compile(r"rek_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")

Keys = Callable[[], Collection[Any]]


@pytest.fixture
def collection(mongodb_uri: str) -> Iterator[Keys]:
    """The keys' collection in the test's fresh database, counting how often a store asks for it."""
    with MongoClient(mongodb_uri) as client:
        yield lambda: client.get_default_database()[COLLECTION]


class Counting:
    """A collection callable that counts the database operations a store starts."""

    def __init__(self, collection: Keys) -> None:
        self.collection = collection
        self.calls = 0

    def __call__(self) -> Collection[Any]:
        self.calls += 1
        return self.collection()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def refused(store: KeyStore, token: str) -> str:
    with pytest.raises(InvalidCredentials) as caught:
        store.authenticate(token)
    return str(caught.value)


# --- the command line ---------------------------------------------------------------------------------------


def test_cli_creates_lists_and_revokes_keys(mongodb_uri: str, collection: Keys) -> None:
    created = run_cli(
        "keys", "create", "--role", "editor", "--subject", "svc-7", "--name", "CI deploy", MONGODB_URI=mongodb_uri
    )
    assert created.returncode == 0, created.stderr
    lines = created.stdout.splitlines()
    match = KEY.fullmatch(lines[-1])
    assert match, created.stdout
    key, (key_id, secret) = lines[-1], match.groups()
    assert len(lines) > 1 and key_id in lines[0] and "editor" in lines[0] and "svc-7" in lines[0]
    assert created.stdout.count(key) == 1 and created.stdout.count(secret) == 1
    assert secret not in created.stderr

    stored = list(collection().find())
    assert len(stored) == 1
    assert stored[0]["_id"] == key_id and stored[0]["hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert (stored[0]["role"], stored[0]["subject"], stored[0]["name"]) == ("editor", "svc-7", "CI deploy")
    assert "revoked" not in stored[0]
    dump = json_util.dumps(stored)
    assert secret not in dump and key not in dump

    listed = run_cli("keys", "list", MONGODB_URI=mongodb_uri)
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split() == ["ID", "ROLE", "SUBJECT", "NAME", "CREATED", "REVOKED"]
    assert row.split()[:3] == [key_id, "editor", "svc-7"] and "CI deploy" in row and row.endswith("-")
    assert secret not in listed.stdout and stored[0]["hash"] not in listed.stdout

    store = KeyStore(collection)
    assert store.authenticate(key) == Principal("key", "svc-7", frozenset({"editor"}), {"key_id": key_id})

    revoked = run_cli("keys", "revoke", key_id, MONGODB_URI=mongodb_uri)
    assert revoked.returncode == 0, revoked.stderr
    assert f"revoked API key {key_id}" in revoked.stdout
    assert refused(KeyStore(collection), key) == INVALID
    relisted = run_cli("keys", "list", MONGODB_URI=mongodb_uri)
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", relisted.stdout.splitlines()[1]), relisted.stdout


def test_cli_revoke_of_an_unknown_id_fails_with_a_message(mongodb_uri: str) -> None:
    result = run_cli("keys", "revoke", "0123456789abcdef", MONGODB_URI=mongodb_uri)
    assert result.returncode == 1
    assert "no API key with id '0123456789abcdef'" in result.stderr and "Traceback" not in result.stderr


def test_cli_create_defaults_the_subject_and_refuses_a_bad_role(mongodb_uri: str, collection: Keys) -> None:
    bad = run_cli("keys", "create", "--role", "drop tables", MONGODB_URI=mongodb_uri)
    assert bad.returncode == 2 and "--role" in bad.stderr and "Traceback" not in bad.stderr
    assert collection().count_documents({}) == 0
    empty = run_cli("keys", "list", MONGODB_URI=mongodb_uri)
    assert empty.returncode == 0 and empty.stdout.strip() == "no API keys"

    created = run_cli("keys", "create", "--role", "reader", MONGODB_URI=mongodb_uri)
    assert created.returncode == 0, created.stderr
    match = KEY.fullmatch(created.stdout.splitlines()[-1])
    assert match
    assert collection().find_one({"_id": match.group(1)}, {"_id": False, "subject": True, "name": True}) == {
        "subject": f"key:{match.group(1)}",
        "name": None,
    }


# --- the store ----------------------------------------------------------------------------------------------


def test_looks_like_key_tells_keys_from_jwts() -> None:
    assert looks_like_key("rek_0123456789abcdef_" + "A" * 43)
    assert looks_like_key("rek_malformed")  # meant as a key: authenticate refuses it
    assert not looks_like_key("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln")


def test_authenticate_accepts_a_key_and_refuses_every_bad_one_alike(collection: Keys) -> None:
    store = KeyStore(collection)
    info, key = store.create("admin", name="ops")
    assert KEY.fullmatch(key) and key.split("_")[1] == info.id
    assert store.authenticate(key) == Principal("key", f"key:{info.id}", frozenset({"admin"}), {"key_id": info.id})

    secret = key[len("rek_") + 17 :]
    other_secret = secrets.token_urlsafe(32)
    bad = [
        f"rek_{info.id}_{other_secret}",  # wrong secret (the key is cached: still refused)
        f"rek_{secrets.token_hex(8)}_{secret}",  # unknown id
        "rek_",
        f"rek_{info.id}",
        f"rek_{info.id[:-1]}G_{secret}",
        f"{key}!",
        f" {key}",
        f"rek_{info.id}_{secret[:20]}",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
        "",
    ]
    fresh = KeyStore(collection)  # nothing cached: the wrong secret is compared with the stored hash
    for token in bad:
        assert refused(store, token) == INVALID, token
        assert refused(fresh, token) == INVALID, token

    assert store.revoke(info.id)
    assert refused(store, key) == INVALID
    assert refused(KeyStore(collection), key) == INVALID


def test_digests_are_compared_in_constant_time(collection: Keys, monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(keys_module.hmac, "compare_digest", spy)
    store = KeyStore(collection)
    info, key = store.create("reader")
    digest = collection().find_one({"_id": info.id})["hash"]  # type: ignore[index]
    store.authenticate(key)  # from the database
    store.authenticate(key)  # from the cache
    refused(store, f"rek_{info.id}_{secrets.token_urlsafe(32)}")
    refused(KeyStore(collection), f"rek_{info.id}_{secrets.token_urlsafe(32)}")
    assert len(compared) == 4 and all(digest in pair for pair in compared)
    assert [a == b for a, b in compared] == [True, True, False, False]


def test_create_validates_role_subject_and_name(collection: Keys) -> None:
    store = KeyStore(collection)
    for role in ("", "two words", "x" * 65, "rôle", "a/b", "$where"):
        with pytest.raises(ValueError):
            store.create(role)
    for subject in ("", "line\nbreak", "s" * 257):
        with pytest.raises(ValueError):
            store.create("reader", subject=subject)
    with pytest.raises(ValueError):
        store.create("reader", name="tab\there")
    assert collection().count_documents({}) == 0
    info, _ = store.create("a.B_c-9" + "x" * 57, subject="user:42", name="n" * 256)
    assert info.role == "a.B_c-9" + "x" * 57 and info.subject == "user:42"


def test_list_shows_every_key_without_secrets_and_revoke_keeps_the_first_time(collection: Keys) -> None:
    store = KeyStore(collection)
    first, first_key = store.create("reader", name="one")
    second, _ = store.create("editor", subject="svc")
    assert store.list() == [first, second]
    assert first.created.tzinfo is not None and first.revoked is None
    assert first_key not in repr(store.list())

    assert store.revoke(first.id)
    revoked = store.list()[0]
    assert revoked.revoked is not None and revoked.revoked >= revoked.created
    assert store.revoke(first.id)  # known: still True, and the first revocation time stays
    assert store.list()[0].revoked == revoked.revoked
    assert not store.revoke("0123456789abcdef")
    assert not store.revoke("not even an id")


def test_revocation_is_immediate_here_and_within_cache_seconds_elsewhere(collection: Keys) -> None:
    clock = Clock()
    here = KeyStore(collection, cache_seconds=5)
    counting = Counting(collection)
    elsewhere = KeyStore(counting, cache_seconds=5, clock=clock)
    info, key = here.create("reader")
    here.authenticate(key)  # cached here too
    elsewhere.authenticate(key)
    assert counting.calls == 1

    assert here.revoke(info.id)
    assert refused(here, key) == INVALID  # at once in the revoking store, despite its cache

    clock.now += 4.9
    assert elsewhere.authenticate(key).claims == {"key_id": info.id}  # cached: no database round trip
    assert counting.calls == 1
    clock.now += 0.1
    assert refused(elsewhere, key) == INVALID
    assert counting.calls == 2


def test_the_cache_expires_in_real_time(collection: Keys) -> None:
    here, elsewhere = KeyStore(collection, cache_seconds=0.3), KeyStore(collection, cache_seconds=0.3)
    info, key = here.create("reader")
    elsewhere.authenticate(key)
    here.revoke(info.id)
    time.sleep(0.4)
    assert refused(elsewhere, key) == INVALID


def test_failed_lookups_are_not_cached(collection: Keys) -> None:
    store = KeyStore(collection)
    key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    key = f"rek_{key_id}_{secret}"
    assert refused(store, key) == INVALID
    # As if another instance created it just now.
    collection().insert_one(
        {"_id": key_id, "hash": hashlib.sha256(secret.encode()).hexdigest(), "role": "reader", "subject": "s"}
    )
    assert store.authenticate(key).subject == "s"


def test_the_cache_is_bounded_and_drops_the_oldest(collection: Keys) -> None:
    counting = Counting(collection)
    store = KeyStore(counting, max_entries=2)
    made = [KeyStore(collection).create("reader")[1] for _ in range(3)]
    for key in made:
        store.authenticate(key)
    assert counting.calls == 3
    store.authenticate(made[2])
    store.authenticate(made[1])
    assert counting.calls == 3  # still cached
    store.authenticate(made[0])
    assert counting.calls == 4  # dropped when the third key came in


def test_cache_seconds_zero_verifies_every_time(collection: Keys) -> None:
    counting = Counting(collection)
    store = KeyStore(counting, cache_seconds=0)
    _, key = KeyStore(collection).create("reader")
    store.authenticate(key)
    store.authenticate(key)
    assert counting.calls == 2


def test_database_errors_propagate() -> None:
    with MongoClient(f"mongodb://127.0.0.1:{free_port()}/x", serverSelectionTimeoutMS=200) as client:
        store = KeyStore(lambda: client.get_default_database()[COLLECTION])
        with pytest.raises(PyMongoError):
            store.authenticate(f"rek_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}")


def test_a_verification_overlapping_a_revocation_is_not_cached(collection: Keys) -> None:
    class RevokesDuringRead:
        """The key is revoked (through the same store) between the store's read and its caching."""

        def __init__(self, store_ref: list[KeyStore]) -> None:
            self.store_ref = store_ref
            self.armed = False

        def find_one(self, *args: Any, **kwargs: Any) -> Any:
            doc = collection().find_one(*args, **kwargs)
            if self.armed:
                self.armed = False
                assert self.store_ref[0].revoke(doc["_id"])
            return doc

        def __getattr__(self, name: str) -> Any:
            return getattr(collection(), name)

    ref: list[KeyStore] = []
    proxy = RevokesDuringRead(ref)
    store = KeyStore(lambda: proxy)  # type: ignore[arg-type, return-value]
    ref.append(store)
    _, key = store.create("reader")
    proxy.armed = True
    assert store.authenticate(key).kind == "key"  # read before the revocation: this one request passes
    assert refused(store, key) == INVALID  # but it was not cached
