"""Item tokens and the per-process backend's item generations (no Redis, no database)."""

from __future__ import annotations

import uuid

from bson import Binary, Decimal128, Int64, ObjectId

from restengine.cache import CollectionKeys, LocalBackend, item_token


def test_item_tokens_are_stable_and_typed() -> None:
    oid = ObjectId()
    assert item_token(oid) == item_token(ObjectId(str(oid))) == f"o{oid}"
    assert item_token(5) == item_token(Int64(5)) == "i5"
    assert item_token("5") == "s5", "a string key never shares an int's token"
    assert item_token(True) is None, "a bool is not an int key"
    assert item_token(uuid.UUID(int=1)) == "u" + "0" * 31 + "1"
    long_key = "x" * 100
    assert item_token(long_key) == item_token("x" * 100) != item_token("x" * 101)
    assert len(item_token(long_key) or "") < 40
    for other in (1.5, Decimal128("1"), Binary(b"\x00" * 16, 4), None):
        assert item_token(other) is None, "unknown key types invalidate the collection instead"


def test_a_local_item_bump_leaves_other_items_and_moves_lists() -> None:
    backend = LocalBackend()
    keys = CollectionKeys.of("db", "books")
    a, b = [keys.documents, keys.item("oA")], [keys.documents, keys.item("oB")]
    backend.put(backend.lookup("item-a", a)[0], b"A", 60, keys.life)
    backend.put(backend.lookup("item-b", b)[0], b"B", 60, keys.life)
    backend.put(backend.lookup("list", [keys.generation])[0], b"L", 60, keys.life)
    backend.bump_items(keys, ["oA"])
    assert backend.lookup("item-a", a)[1] is None
    assert backend.lookup("item-b", b)[1] == b"B"
    assert backend.lookup("list", [keys.generation])[1] is None
    backend.bump([keys.generation, keys.documents])
    assert backend.lookup("item-b", b)[1] is None


def test_too_many_local_item_generations_drop_every_entry() -> None:
    backend = LocalBackend()
    backend.ITEMS_KEPT = 3
    keys = CollectionKeys.of("db", "books")
    a = [keys.documents, keys.item("oA")]
    full = backend.lookup("item-a", a)[0]  # a request starts building item A...
    backend.bump_items(keys, ["oA", "oB"])
    backend.bump_items(keys, ["oC", "oD"])  # over the limit: item generations forgotten
    backend.put(full, b"old A", 60, keys.life)  # ...and stores what it read before the write
    assert backend.lookup("item-a", a)[1] is None, "an entry keyed before the reset is never found"
