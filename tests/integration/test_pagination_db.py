"""Keyset pagination against the real server: every page walk sees each document once, in order."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from bson import Decimal128
from pymongo import MongoClient
from pymongo.collection import Collection

from restengine.api.pagination import CursorCodec, SortKey, keyset_filter, sort_values
from tests.keys import TEST_SECRET

LIMIT = 7
CODEC = CursorCodec(TEST_SECRET.encode(), "pg")
SORTS: list[list[SortKey]] = [
    [("a", 1), ("_id", 1)],
    [("a", -1), ("b", 1), ("_id", 1)],
    [("_id", -1)],
    [("b", -1), ("a", 1), ("_id", -1)],
    [("n.x", -1), ("d", 1), ("_id", 1)],
    [("t", 1), ("a", -1), ("_id", 1)],
]
BASE_FILTERS: list[dict[str, Any]] = [{}, {"c": {"$lt": 2}}]


def _maybe(rng: random.Random, doc: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key`` to ``value``, to null, or leave it missing."""
    roll = rng.random()
    if roll < 0.15:
        doc[key] = None
    elif roll >= 0.3:
        doc[key] = value


def _document(rng: random.Random) -> dict[str, Any]:
    doc: dict[str, Any] = {"c": rng.randrange(3)}
    _maybe(rng, doc, "a", rng.randrange(8))
    _maybe(rng, doc, "b", rng.choice(["", "apple", "Apple", "pear", "zebra", "é"]))
    _maybe(rng, doc, "d", Decimal128(rng.choice(["1.50", "2", "-3.25", "10"])))
    _maybe(rng, doc, "t", dt.datetime(2024, 1, 1) + dt.timedelta(days=rng.randrange(5), milliseconds=rng.randrange(2)))
    roll = rng.random()
    if roll < 0.1:
        doc["n"] = None
    elif roll < 0.2:
        doc["n"] = {}
    elif roll < 0.3:
        doc["n"] = {"x": None}
    elif roll < 0.9:
        doc["n"] = {"x": rng.randrange(4)}
    return doc


@pytest.fixture
def collection(mongodb_uri: str) -> Iterator[Collection[dict[str, Any]]]:
    client: MongoClient[dict[str, Any]] = MongoClient(mongodb_uri, uuidRepresentation="standard")
    coll = client.get_default_database()["items"]
    rng = random.Random(20240229)
    coll.insert_many([_document(rng) for _ in range(300)])
    yield coll
    client.close()


def walk(
    coll: Collection[dict[str, Any]],
    base: dict[str, Any],
    sort: list[SortKey],
    between_pages: Callable[[], None] | None = None,
) -> list[Any]:
    """The ids seen walking every page, carrying the position through a cursor token."""
    seen: list[Any] = []
    token: str | None = None
    for _ in range(1000):
        query = base if token is None else {"$and": [base, keyset_filter(sort, CODEC.decode(token, sort))]}
        page = list(coll.find(query).sort(sort).limit(LIMIT))
        seen.extend(doc["_id"] for doc in page)
        if len(page) < LIMIT:
            return seen
        token = CODEC.encode(sort, sort_values(page[-1], sort))
        if between_pages is not None:
            between_pages()
    raise AssertionError("the walk did not end")


@pytest.mark.parametrize("base", BASE_FILTERS, ids=["all", "filtered"])
@pytest.mark.parametrize("sort", SORTS, ids=lambda s: ",".join(f"{k}:{d}" for k, d in s))
def test_walk_sees_every_document_once_in_sort_order(
    collection: Collection[dict[str, Any]], sort: list[SortKey], base: dict[str, Any]
) -> None:
    expected = [doc["_id"] for doc in collection.find(base).sort(sort)]
    assert len(expected) > 3 * LIMIT
    assert walk(collection, base, sort) == expected


@pytest.mark.parametrize("sort", SORTS, ids=lambda s: ",".join(f"{k}:{d}" for k, d in s))
def test_walk_while_inserting_skips_and_repeats_nothing(
    collection: Collection[dict[str, Any]], sort: list[SortKey]
) -> None:
    initial = {doc["_id"] for doc in collection.find({}, {"_id": 1})}
    rng = random.Random(7)

    def insert() -> None:
        collection.insert_many([_document(rng) for _ in range(4)])

    seen = walk(collection, {}, sort, between_pages=insert)
    assert len(seen) == len(set(seen)), "a document was repeated"
    assert initial <= set(seen), "a document that existed at the start was skipped"
    final_order = [doc["_id"] for doc in collection.find().sort(sort)]
    position = {oid: index for index, oid in enumerate(final_order)}
    assert [position[oid] for oid in seen] == sorted(position[oid] for oid in seen), "pages went out of order"
