"""The Atlas Data API profile on the real app and database, written from the Data API's own documentation.

The request and response shapes are those of its OpenAPI reference (one page per action, each with a curl
example such as ``find`` on ``tasks`` filtered by ``{"status": "complete"}``, sorted by ``{"completedAt": 1}``,
``limit`` 10) and of its "Data Formats" page (JSON or EJSON both ways); the collections are the served demo's
``books`` and ``author`` and the legacy shop's ``customers``, ``orders`` and ``products``.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from bson import Decimal128, ObjectId, json_util
from bson.binary import UuidRepresentation
from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate
from werkzeug.test import TestResponse

import restengine.db
from restengine import create_app
from restengine.auth.keys import COLLECTION as KEYS_COLLECTION
from restengine.auth.keys import KeyStore
from restengine.demo.bookstore import Author, Book
from restengine.documents import load_documents
from restengine.ops.indexes import create_indexes
from tests.integration.api_helpers import (
    ALL_DOCUMENTS,
    customer,
    database_name,
    legacy_app,
    legacy_registry,
    order,
    product,
    protected_app,
    stored_count,
)
from tests.keys import TEST_SECRET

BASE = "/app/data-abcde/endpoint/data/v1"
JSON = "application/json"
EJSON = "application/ejson"
ERROR_KEYS = {"error", "error_code", "link"}
MAX_BATCH = 5
UUIDS = UuidRepresentation.PYTHON_LEGACY  # RESTENGINE_UUID_REPRESENTATION's default: MongoEngine's own
SENT = json_util.CANONICAL_JSON_OPTIONS.with_options(uuid_representation=UUIDS)
READ = json_util.DEFAULT_JSON_OPTIONS.with_options(uuid_representation=UUIDS)


@contextmanager
def data_app(mongodb_uri: str, **config: Any) -> Iterator[Flask]:
    """The real app (demo and legacy models) with the Data API under :data:`BASE`, every index built."""
    settings = {
        "MONGODB_URI": mongodb_uri,
        "RESTENGINE_DOCUMENTS": ALL_DOCUMENTS,
        "RESTENGINE_SECRET_KEY": TEST_SECRET,
        "RESTENGINE_DATA_API": BASE,
        "RESTENGINE_DATA_API_AGGREGATE": "books,orders",
        "RESTENGINE_MAX_BATCH": str(MAX_BATCH),
        **config,
    }
    with legacy_registry():
        app = create_app(settings)
        try:
            create_indexes(load_documents(["tests.legacy_models", "restengine.demo.bookstore"]))
            yield app
        finally:
            restengine.db.close_all()


@pytest.fixture
def app(mongodb_uri: str) -> Iterator[Flask]:
    with data_app(mongodb_uri) as app:
        yield app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def post(
    client: FlaskClient,
    name: str,
    body: Any,
    *,
    ejson: bool = False,
    accept: str | None = JSON,
    headers: dict[str, str] | None = None,
    content_type: str | None = None,
) -> TestResponse:
    """``POST <base>/action/<name>``; a dict body gets ``dataSource`` and ``database`` unless it has them."""
    if isinstance(body, dict):
        body = {"dataSource": "mongodb-atlas", "database": database_name(), **body}
    data = body if isinstance(body, (str, bytes)) else json_util.dumps(body, json_options=SENT)
    sent = {**({"Accept": accept} if accept else {}), **(headers or {})}
    return client.post(
        f"{BASE}/action/{name}", data=data, content_type=content_type or (EJSON if ejson else JSON), headers=sent
    )


def ok(response: TestResponse) -> Any:
    """The 200 answer's body: JSON, or EJSON read back into BSON types."""
    assert response.status_code == 200, (response.status_code, response.get_data(as_text=True)[:600])
    if response.mimetype == EJSON:
        return json_util.loads(response.get_data(as_text=True), json_options=READ)
    assert response.mimetype == JSON
    return response.get_json()


def refused(response: TestResponse, status: int, code: str) -> str:
    """Check a refusal in the Data API's error shape; its ``error`` message."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:600])
    assert response.mimetype == JSON
    body = response.get_json()
    assert set(body) == ERROR_KEYS, body
    assert body["error_code"] == code, body
    assert isinstance(body["error"], str) and body["error"] and isinstance(body["link"], str)
    return str(body["error"])


@pytest.fixture
def shelf(app: Flask) -> dict[str, Any]:
    """Two authors; three books, two of Le Guin's."""
    ursula = Author(name="Ursula K. Le Guin", country="US", bio="Earthsea").save()
    octavia = Author(name="Octavia E. Butler", country="US").save()
    wizard = {"tags": ["fantasy"], "price": Decimal("8.99"), "pages": 183, "published": datetime(1968, 11, 1)}
    dispossessed = {"tags": ["sf"], "price": Decimal("9.50"), "pages": 387, "published": datetime(1974, 5, 1)}
    kindred = {"tags": ["sf"], "price": Decimal("12.00"), "pages": 264, "published": datetime(1979, 6, 1)}
    books = [
        Book(title="A Wizard of Earthsea", author=ursula, isbn="9780547722023", **wizard),
        Book(title="The Dispossessed", author=ursula, isbn=isbn(), in_stock=False, **dispossessed),
        Book(title="Kindred", author=octavia, isbn=isbn(), **kindred),
    ]
    for book in books:
        book.save()
    return {"ursula": ursula, "octavia": octavia, "books": books}


_isbns = itertools.count(9_780_000_000_000)


def isbn() -> str:
    """A fresh ISBN: ``isbn`` has a unique index that is not sparse, so books without one collide."""
    return str(next(_isbns))


def fillers(author: Author, count: int) -> None:
    Book.objects.insert([Book(title=f"Filler {n}", author=author, isbn=isbn()) for n in range(count)])


def stored(book_id: Any) -> dict[str, Any]:
    found = restengine.db.get_database()["books"].find_one({"_id": ObjectId(str(book_id))})
    assert found is not None
    return dict(found)


# ---------------------------------------------------------------- each action, as the documentation shows it


def test_find_one_answers_document_or_null(client: FlaskClient, shelf: dict[str, Any]) -> None:
    wizard = shelf["books"][0]
    found = ok(post(client, "findOne", {"collection": "books", "filter": {"_id": {"$oid": str(wizard.id)}}}))
    document = found["document"]
    assert next(iter(document)) == "_id" and document["_id"] == str(wizard.id)
    assert document["title"] == "A Wizard of Earthsea" and document["author"] == str(shelf["ursula"].id)
    assert document["price"] == "8.99" and document["published"] == "1968-11-01T00:00:00Z", "the JSON format"
    projected = ok(
        post(
            client,
            "findOne",
            {"collection": "books", "filter": {"title": "Kindred"}, "projection": {"title": 1, "_id": 0}},
        )
    )
    assert projected == {"document": {"title": "Kindred"}}
    assert ok(post(client, "findOne", {"collection": "books", "filter": {"title": "Nothing"}})) == {"document": None}


def test_find_filters_sorts_limits_skips_and_projects(client: FlaskClient, shelf: dict[str, Any]) -> None:
    # The reference's example: filter, sort, limit, projection.
    body = {
        "collection": "books",
        "filter": {"tags": "sf"},
        "sort": {"published": 1},
        "limit": 10,
        "projection": {"title": 1, "published": 1},
    }
    documents = ok(post(client, "find", body))["documents"]
    assert [d["title"] for d in documents] == ["The Dispossessed", "Kindred"]
    assert all(set(d) == {"_id", "title", "published"} for d in documents)
    pages = [
        ok(post(client, "find", {"collection": "books", "sort": {"title": -1}, "limit": 1, "skip": n}))
        for n in range(4)
    ]
    expected = [["The Dispossessed"], ["Kindred"], ["A Wizard of Earthsea"], []]
    assert [[d["title"] for d in p["documents"]] for p in pages] == expected
    ranged = {"collection": "books", "filter": {"pages": {"$gte": 200, "$lt": 300}, "in_stock": True}}
    assert [d["title"] for d in ok(post(client, "find", ranged))["documents"]] == ["Kindred"]
    either = {
        "collection": "books",
        "filter": {"$or": [{"title": "Kindred"}, {"pages": {"$gt": 300}}]},
        "sort": [["title", 1]],
    }
    assert [d["title"] for d in ok(post(client, "find", either))["documents"]] == ["Kindred", "The Dispossessed"]
    excluded = ok(post(client, "find", {"collection": "books", "projection": {"reviews": 0, "tags": 0}, "limit": 1}))
    assert {"reviews", "tags"}.isdisjoint(excluded["documents"][0]) and "title" in excluded["documents"][0]
    authors = ok(post(client, "find", {"collection": "author", "filter": {"country": "US"}}))
    assert len(authors["documents"]) == 2


def test_find_without_limit_refuses_more_than_one_page_rather_than_cutting_it(client: FlaskClient) -> None:
    Author._get_collection().insert_many([{"name": f"Author {n:03d}"} for n in range(101)])
    message = refused(post(client, "find", {"collection": "author"}), 400, "InvalidParameter")
    assert "more than 100 documents match" in message
    assert len(ok(post(client, "find", {"collection": "author", "limit": 100}))["documents"]) == 100
    refused(post(client, "find", {"collection": "author", "limit": 101}), 400, "InvalidParameter")
    assert len(ok(post(client, "find", {"collection": "author", "limit": 100, "skip": 100}))["documents"]) == 1


def test_insert_one_goes_through_validation_and_clean(client: FlaskClient, shelf: dict[str, Any]) -> None:
    ursula = str(shelf["ursula"].id)
    document = {
        "title": "The Lathe of Heaven",
        "author": ursula,
        "tags": [" SF ", "sf", "Classic"],
        "price": "7.25",
        "isbn": isbn(),
    }
    inserted = ok(post(client, "insertOne", {"collection": "books", "document": document}))
    assert set(inserted) == {"insertedId"} and ObjectId.is_valid(inserted["insertedId"])
    raw = stored(inserted["insertedId"])
    assert raw["tags"] == ["sf", "classic"], "the Document's clean() ran"
    assert raw["author"] == shelf["ursula"].id and raw["in_stock"] is True
    chosen = ObjectId()
    again = ok(
        post(
            client,
            "insertOne",
            {"collection": "books", "document": {"_id": chosen, "title": "Lavinia", "author": ursula, "isbn": isbn()}},
        )
    )
    assert again == {"insertedId": str(chosen)}
    invalid = post(client, "insertOne", {"collection": "books", "document": {"title": "x" * 201, "author": ursula}})
    assert "title" in refused(invalid, 422, "UnprocessableEntity")
    dangling = post(
        client, "insertOne", {"collection": "books", "document": {"title": "Orphan", "author": str(ObjectId())}}
    )
    assert "author" in refused(dangling, 422, "UnprocessableEntity")
    duplicate = {"title": "Copy", "author": ursula, "isbn": "9780547722023"}
    assert "isbn" in refused(post(client, "insertOne", {"collection": "books", "document": duplicate}), 409, "Conflict")


def test_insert_many_inserts_all_or_none(client: FlaskClient, shelf: dict[str, Any]) -> None:
    ursula = str(shelf["ursula"].id)
    documents = [
        {"title": "Tehanu", "author": ursula, "isbn": isbn()},
        {"title": "Tales from Earthsea", "author": ursula, "isbn": isbn()},
    ]
    inserted = ok(post(client, "insertMany", {"collection": "books", "documents": documents}))
    assert len(inserted["insertedIds"]) == 2 and all(ObjectId.is_valid(i) for i in inserted["insertedIds"])
    assert stored_count("books") == 5
    bad = [{"title": "The Other Wind", "author": ursula, "isbn": isbn()}, {"author": ursula, "isbn": isbn()}]
    message = refused(post(client, "insertMany", {"collection": "books", "documents": bad}), 422, "UnprocessableEntity")
    assert "1.title" in message
    assert stored_count("books") == 5, "nothing of a refused batch is inserted"
    too_many = [{"title": f"Book {n}", "author": ursula, "isbn": isbn()} for n in range(MAX_BATCH + 1)]
    message = refused(
        post(client, "insertMany", {"collection": "books", "documents": too_many}), 400, "InvalidParameter"
    )
    assert f"at most {MAX_BATCH}" in message and stored_count("books") == 5


def test_update_one_applies_operators_as_a_patch_would(client: FlaskClient, shelf: dict[str, Any]) -> None:
    wizard = shelf["books"][0]
    update = {
        "$set": {"in_stock": False, "currency": "USD"},
        "$inc": {"pages": 2, "price": 1},
        "$push": {"tags": " Classic "},
        "$addToSet": {"reviews": {"reviewer": "ann", "rating": 5}},
    }
    result = ok(post(client, "updateOne", {"collection": "books", "filter": {"_id": str(wizard.id)}, "update": update}))
    assert result == {"matchedCount": 1, "modifiedCount": 1}
    raw = stored(wizard.id)
    assert raw["in_stock"] is False and raw["currency"] == "USD" and raw["pages"] == 185
    assert Decimal(str(raw["price"])) == Decimal("9.99") and raw["tags"] == ["fantasy", "classic"]
    assert raw["reviews"] == [{"reviewer": "ann", "rating": 5}]
    pulled = {"$pull": {"tags": "classic", "reviews": {"reviewer": "ann"}}, "$unset": {"currency": ""}}
    assert (
        ok(post(client, "updateOne", {"collection": "books", "filter": {"title": wizard.title}, "update": pulled}))[
            "modifiedCount"
        ]
        == 1
    )
    raw = stored(wizard.id)
    assert raw["tags"] == ["fantasy"] and not raw.get("reviews") and "currency" not in raw
    same = {"collection": "books", "filter": {"title": wizard.title}, "update": {"$set": {"pages": 185}}}
    assert ok(post(client, "updateOne", same)) == {"matchedCount": 1, "modifiedCount": 0}
    none = {"collection": "books", "filter": {"title": "Nothing"}, "update": {"$set": {"pages": 1}}}
    assert ok(post(client, "updateOne", none)) == {"matchedCount": 0, "modifiedCount": 0}, "no upsertedId"
    invalid = {"collection": "books", "filter": {"title": wizard.title}, "update": {"$set": {"pages": 0}}}
    assert "pages" in refused(post(client, "updateOne", invalid), 422, "UnprocessableEntity")
    huge = {"collection": "books", "filter": {"title": wizard.title}, "update": {"$inc": {"pages": 2**63 - 1}}}
    assert "64 bits" in refused(post(client, "updateOne", huge), 422, "UnprocessableEntity")
    exact = {
        "collection": "books",
        "filter": {"title": wizard.title},
        "update": {"$inc": {"price": Decimal128("0.01")}},
    }
    ok(post(client, "updateOne", exact, ejson=True))
    assert Decimal(str(stored(wizard.id)["price"])) == Decimal("10.00"), "a $numberDecimal adds exactly"
    second = {"collection": "books", "filter": {"title": wizard.title}, "update": {"$set": {"tags.1": "second"}}}
    ok(post(client, "updateOne", second))
    assert stored(wizard.id)["tags"] == ["fantasy", "second"]
    for path in ("tags.5", "tags.²", "tags.x"):
        far = {"collection": "books", "filter": {"title": wizard.title}, "update": {"$set": {path: "x"}}}
        refused(post(client, "updateOne", far), 400, "InvalidParameter")


def test_update_one_with_upsert_inserts_the_filter_and_the_update(client: FlaskClient, shelf: dict[str, Any]) -> None:
    ursula = str(shelf["ursula"].id)
    body = {
        "collection": "books",
        "filter": {"title": "The Word for World Is Forest", "author": {"$eq": ursula}, "pages": {"$gt": 1}},
        "update": {"$set": {"pages": 189, "isbn": "9780000000001"}, "$push": {"tags": "sf"}},
        "upsert": True,
    }
    result = ok(post(client, "updateOne", body))
    assert result["matchedCount"] == 0 and result["modifiedCount"] == 0 and ObjectId.is_valid(result["upsertedId"])
    raw = stored(result["upsertedId"])
    inserted = (raw["title"], raw["author"], raw["pages"], raw["tags"])
    assert inserted == ("The Word for World Is Forest", shelf["ursula"].id, 189, ["sf"]), "the filter's and $set's"
    again = ok(post(client, "updateOne", {**body, "update": {"$inc": {"pages": 1}}}))
    assert again == {"matchedCount": 1, "modifiedCount": 1}, "now it matches"
    incomplete = {**body, "filter": {"title": "No author"}}
    assert "author" in refused(post(client, "updateOne", incomplete), 422, "UnprocessableEntity")


def test_update_many_changes_every_match_within_the_batch(client: FlaskClient, shelf: dict[str, Any]) -> None:
    body = {
        "collection": "books",
        "filter": {"author": str(shelf["ursula"].id)},
        "update": {"$set": {"currency": "EUR"}},
    }
    assert ok(post(client, "updateMany", body)) == {"matchedCount": 2, "modifiedCount": 2}
    assert ok(post(client, "updateMany", body)) == {"matchedCount": 2, "modifiedCount": 0}
    fillers(shelf["octavia"], MAX_BATCH)
    everything = {"collection": "books", "filter": {}, "update": {"$set": {"currency": "GBP"}}}
    assert f"more than {MAX_BATCH}" in refused(post(client, "updateMany", everything), 400, "InvalidParameter")
    assert not restengine.db.get_database()["books"].count_documents({"currency": "GBP"}), "nothing was changed"
    one_bad = {
        "collection": "books",
        "filter": {"author": str(shelf["ursula"].id)},
        "update": {"$inc": {"pages": -184}},
    }
    assert "pages" in refused(post(client, "updateMany", one_bad), 422, "UnprocessableEntity"), "183 - 184 < 1"
    assert sorted(b.pages for b in Book.objects(author=shelf["ursula"])) == [183, 387], "every one validated first"


def test_replace_one_replaces_as_a_put_would(client: FlaskClient, shelf: dict[str, Any]) -> None:
    kindred = shelf["books"][2]
    octavia = str(shelf["octavia"].id)
    body = {
        "collection": "books",
        "filter": {"title": "Kindred"},
        "replacement": {"title": "Kindred (2004)", "author": octavia},
    }
    assert ok(post(client, "replaceOne", body)) == {"matchedCount": 1, "modifiedCount": 1}
    raw = stored(kindred.id)
    assert raw["title"] == "Kindred (2004)" and "pages" not in raw and "price" not in raw, "absent fields are gone"
    moved = {
        **body,
        "filter": {"_id": {"$oid": str(kindred.id)}},
        "replacement": {"_id": {"$oid": str(ObjectId())}, "title": "X", "author": octavia},
    }
    assert "_id cannot be changed" in refused(post(client, "replaceOne", moved, ejson=True), 400, "InvalidParameter")
    upsert = {
        "collection": "books",
        "filter": {"_id": {"$oid": str(ObjectId())}},
        "replacement": {"title": "Fledgling", "author": octavia, "isbn": isbn()},
        "upsert": True,
    }
    result = ok(post(client, "replaceOne", upsert, ejson=True))
    assert result["upsertedId"] == upsert["filter"]["_id"]["$oid"], "the filter's _id"
    operators = {"collection": "books", "filter": {}, "replacement": {"$set": {"title": "x"}}}
    refused(post(client, "replaceOne", operators), 400, "InvalidParameter")


def test_delete_one_and_many_follow_delete_rules(client: FlaskClient, shelf: dict[str, Any]) -> None:
    assert ok(post(client, "deleteOne", {"collection": "books", "filter": {"title": "Kindred"}})) == {"deletedCount": 1}
    assert ok(post(client, "deleteOne", {"collection": "books", "filter": {"title": "Kindred"}})) == {"deletedCount": 0}
    guarded = post(client, "deleteOne", {"collection": "author", "filter": {"name": "Ursula K. Le Guin"}})
    assert "refer to this one" in refused(guarded, 409, "Conflict"), "an author with books is denied (DENY rule)"
    assert ok(post(client, "deleteMany", {"collection": "books", "filter": {"tags": "fantasy"}})) == {"deletedCount": 1}
    fillers(shelf["octavia"], MAX_BATCH + 1)
    assert f"more than {MAX_BATCH}" in refused(
        post(client, "deleteMany", {"collection": "books", "filter": {}}), 400, "InvalidParameter"
    )
    assert stored_count("books") == MAX_BATCH + 2, "nothing was deleted"
    only = {"collection": "books", "filter": {"title": {"$in": ["The Dispossessed", "Filler 0"]}}}
    assert ok(post(client, "deleteMany", only)) == {"deletedCount": 2}
    ok(post(client, "deleteMany", {"collection": "books", "filter": {"author": str(shelf["ursula"].id)}}))
    stopped = refused(post(client, "deleteMany", {"collection": "author", "filter": {}}), 409, "Conflict")
    assert "1 documents were deleted before this one" in stopped, "Le Guin has no book left; Butler has fillers"
    assert [a.name for a in Author.objects] == ["Octavia E. Butler"]


def test_writes_invalidate_what_the_native_api_cached(client: FlaskClient, shelf: dict[str, Any]) -> None:
    wizard = shelf["books"][0]
    item = f"/api/books/{wizard.id}"
    assert client.get(item).get_json()["pages"] == 183
    assert client.get(item).get_json()["pages"] == 183
    ok(
        post(
            client,
            "updateOne",
            {"collection": "books", "filter": {"_id": str(wizard.id)}, "update": {"$inc": {"pages": 1}}},
        )
    )
    assert client.get(item).get_json()["pages"] == 184
    ok(post(client, "deleteOne", {"collection": "books", "filter": {"_id": str(wizard.id)}}))
    assert client.get(item).status_code == 404


# ---------------------------------------------------------------- JSON and EJSON, both ways


def test_ejson_in_and_canonical_ejson_out(client: FlaskClient, shelf: dict[str, Any]) -> None:
    ursula = shelf["ursula"].id
    document = {
        "title": "Always Coming Home",
        "author": ursula,
        "published": datetime(1985, 9, 1, 12, 30),
        "price": Decimal128("14.95"),
        "pages": 523,
        "isbn": isbn(),
    }
    response = post(client, "insertOne", {"collection": "books", "document": document}, ejson=True, accept=EJSON)
    assert response.mimetype == EJSON and '"$oid"' in response.get_data(as_text=True)
    inserted = ok(response)["insertedId"]
    assert isinstance(inserted, ObjectId)
    raw = stored(inserted)
    assert raw["published"] == datetime(1985, 9, 1, 12, 30) and Decimal(str(raw["price"])) == Decimal("14.95")
    found = post(client, "findOne", {"collection": "books", "filter": {"_id": inserted}}, ejson=True, accept=EJSON)
    text = found.get_data(as_text=True)
    millis = int(datetime(1985, 9, 1, 12, 30, tzinfo=UTC).timestamp() * 1000)
    assert f'{{"$date": {{"$numberLong": "{millis}"}}}}' in text and '{"$numberInt": "523"}' in text, "canonical"
    document_back = ok(found)["document"]
    assert document_back["_id"] == inserted and document_back["author"] == ursula
    assert document_back["published"] == datetime(1985, 9, 1, 12, 30) and document_back["pages"] == 523
    counts = post(
        client,
        "updateOne",
        {"collection": "books", "filter": {"_id": inserted}, "update": {"$set": {"pages": 524}}},
        ejson=True,
        accept=EJSON,
    )
    assert '"matchedCount": {"$numberInt": "1"}' in counts.get_data(as_text=True)
    ranged = {"collection": "books", "filter": {"published": {"$gt": {"$date": "1980-01-01T00:00:00Z"}}}}
    assert [d["title"] for d in ok(post(client, "find", ranged))["documents"]] == ["Always Coming Home"]


def test_json_is_the_default_and_accept_picks_the_format(client: FlaskClient, shelf: dict[str, Any]) -> None:
    body = {"collection": "books", "filter": {"title": "Kindred"}}
    for accept in (None, "*/*", JSON, "application/*"):
        response = post(client, "findOne", body, accept=accept)
        assert response.mimetype == JSON and ok(response)["document"]["price"] == "12.00", accept
    assert post(client, "findOne", body, accept=f"{JSON};q=0.5, {EJSON}").mimetype == EJSON
    refused(post(client, "findOne", body, accept="text/html"), 406, "NotAcceptable")
    refused(post(client, "findOne", body, content_type="text/plain"), 415, "UnsupportedMediaType")
    refused(
        post(client, "findOne", body, content_type="application/x-www-form-urlencoded"), 415, "UnsupportedMediaType"
    )


# ---------------------------------------------------------------- what is refused


@pytest.mark.parametrize(
    "query",
    [
        {"$where": "this.pages > 1"},
        {"$expr": {"$gt": ["$pages", 1]}},
        {"$function": {"body": "function() { return true }", "args": [], "lang": "js"}},
        {"title": {"$regex": "^K"}},
        {"title": {"$regularExpression": {"pattern": "^K", "options": ""}}},
        {"title": {"$where": "1"}},
        {"author__name": "x"},
        {"__class__": "x"},
        {"author.name": "x"},
        {"title": {"$elemMatch": {"a": 1}}},
        {"pages": {"$in": "not a list"}},
        {"pages": "not a number"},
        {"$and": []},
        {"": 1},
    ],
)
def test_filters_go_through_the_whitelist(client: FlaskClient, shelf: dict[str, Any], query: dict[str, Any]) -> None:
    for name in ("find", "findOne", "deleteMany"):
        refused(post(client, name, {"collection": "books", "filter": query}), 400, "InvalidParameter")
    assert stored_count("books") == 3


@pytest.mark.parametrize(
    ("update", "why"),
    [
        ({"title": "no operator"}, "replaceOne"),
        ({"$rename": {"title": "name"}}, "not allowed"),
        ({"$setOnInsert": {"title": "x"}}, "not allowed"),
        ({"$set": {"_id": "x"}}, "_id cannot be changed"),
        ({"$set": {"id": "x"}}, "_id cannot be changed"),
        ({"$set": {"nope": 1}}, "not a field you may change"),
        ({"$set": {"author__name": 1}}, "not a field path"),
        ({"$set": {"reviews.$.rating": 1}}, "positional"),
        ({"$inc": {"pages": [1]}}, "takes a number"),
        ({"$inc": {"pages": "1"}}, "must be numbers"),
        ({"$inc": {"title": 1}}, "must be numbers"),
        ({"$push": {"tags": {"$each": ["a"], "$slice": 1}}}, "only $each"),
        ({"$pull": {"tags": {"$in": ["a"]}}}, "not a condition"),
        ({"$set": {"pages": 1, "pages.x": 2}}, "conflict"),
        ({"$set": {}}, "takes an object"),
        ({}, "at least one"),
    ],
)
def test_update_documents_are_whitelisted(client: FlaskClient, shelf: dict[str, Any], update: Any, why: str) -> None:
    body = {"collection": "books", "filter": {"title": "Kindred"}, "update": update}
    assert why in refused(post(client, "updateOne", body), 400, "InvalidParameter")
    assert stored(shelf["books"][2].id)["title"] == "Kindred"


def test_aggregate_runs_allowed_stages_behind_the_scope(client: FlaskClient, shelf: dict[str, Any]) -> None:
    pipeline = [
        {"$match": {"in_stock": True}},
        {
            "$group": {
                "_id": "$author",
                "books": {"$sum": 1},
                "pages": {"$avg": "$pages"},
                "titles": {"$push": "$title"},
            }
        },
        {"$lookup": {"from": "author", "localField": "_id", "foreignField": "_id", "as": "who"}},
        {"$unwind": "$who"},
        {"$project": {"_id": 0, "name": "$who.name", "books": 1, "pages": 1, "long": {"$gt": ["$pages", 200]}}},
        {"$sort": {"name": 1}},
    ]
    documents = ok(post(client, "aggregate", {"collection": "books", "pipeline": pipeline}))["documents"]
    assert documents == [
        {"name": "Octavia E. Butler", "books": 1, "pages": 264.0, "long": True},
        {"name": "Ursula K. Le Guin", "books": 1, "pages": 183.0, "long": False},
    ]
    counted = [{"$unwind": "$tags"}, {"$match": {"tags": "sf"}}, {"$count": "sf"}]
    assert ok(post(client, "aggregate", {"collection": "books", "pipeline": counted}))["documents"] == [{"sf": 2}]
    paged = [{"$sort": {"pages": -1}}, {"$skip": 1}, {"$limit": 1}, {"$project": {"title": 1, "_id": 0}}]
    assert ok(post(client, "aggregate", {"collection": "books", "pipeline": paged}))["documents"] == [
        {"title": "Kindred"}
    ]
    typed = post(
        client, "aggregate", {"collection": "books", "pipeline": [{"$match": {"title": "Kindred"}}]}, accept=EJSON
    )
    assert ok(typed)["documents"][0]["author"] == shelf["octavia"].id
    for impossible in ({"$size": "$title"}, {"$divide": ["$pages", 0]}, {"$add": ["$title", 1]}):
        pipeline = [{"$project": {"x": impossible}}]
        assert "cannot run it" in refused(
            post(client, "aggregate", {"collection": "books", "pipeline": pipeline}), 400, "InvalidParameter"
        )


@pytest.mark.parametrize(
    "stage",
    [
        {"$out": "stolen"},
        {"$merge": {"into": "stolen"}},
        {"$unionWith": KEYS_COLLECTION},
        {"$lookup": {"from": KEYS_COLLECTION, "localField": "_id", "foreignField": "_id", "as": "k"}},
        {"$lookup": {"from": "author", "localField": "author", "foreignField": "_id", "as": "a", "pipeline": []}},
        {"$lookup": {"from": "author", "localField": "author", "foreignField": "secret", "as": "a"}},
        {"$project": {"x": {"$function": {"body": "function() {}", "args": [], "lang": "js"}}}},
        {"$group": {"_id": None, "x": {"$accumulator": {"init": "function() {}"}}}},
        {"$group": {"_id": None, "x": {"$sum": {"$function": {}}}}},
        {"$match": {"$where": "1"}},
        {"$match": {"$expr": {"$eq": ["$title", "x"]}}},
        {"$match": {"title": {"$regex": "K"}}},
        {"$project": {"root": "$$ROOT"}},
        {"$addFields": {"x": 1}},
        {"$sort": {"title": 2}},
        {"$limit": 0},
        {"$unwind": "tags"},
        {"$count": "$x"},
        {"$group": {"x": {"$sum": 1}}},
        {"$facet": {}},
        {"$project": {"x": 1}, "$limit": 1},
        "not a stage",
    ],
)
def test_aggregate_refuses_what_is_not_whitelisted(client: FlaskClient, shelf: dict[str, Any], stage: Any) -> None:
    pipeline = [{"$sort": {"title": 1}}, stage]  # after the first stage: checked by the pipeline's own whitelist
    refused(post(client, "aggregate", {"collection": "books", "pipeline": pipeline}), 400, "InvalidParameter")
    assert "stolen" not in restengine.db.get_database().list_collection_names()


def test_aggregate_only_where_enabled_and_within_bounds(client: FlaskClient, shelf: dict[str, Any]) -> None:
    refused(
        post(client, "aggregate", {"collection": "author", "pipeline": [{"$match": {}}]}), 403, "NoMatchingRuleFound"
    )
    refused(post(client, "aggregate", {"collection": "books", "pipeline": []}), 400, "InvalidParameter")
    refused(post(client, "aggregate", {"collection": "books"}), 400, "MissingParameter")
    deep: Any = "$pages"
    for _ in range(20):
        deep = {"$add": [deep, 1]}
    refused(
        post(client, "aggregate", {"collection": "books", "pipeline": [{"$project": {"x": deep}}]}),
        400,
        "InvalidParameter",
    )
    many = [{"$skip": 0}] * 21
    refused(post(client, "aggregate", {"collection": "books", "pipeline": many}), 400, "InvalidParameter")
    fillers(shelf["octavia"], 100)
    message = refused(
        post(client, "aggregate", {"collection": "books", "pipeline": [{"$match": {}}]}), 400, "InvalidParameter"
    )
    assert "$limit" in message


def test_unserved_collections_and_databases_are_404(client: FlaskClient, shelf: dict[str, Any]) -> None:
    for collection in (KEYS_COLLECTION, "system.users", "nope", "Book", "restengine_idempotency"):
        assert collection in refused(post(client, "find", {"collection": collection}), 404, "NotFound")
    refused(post(client, "find", {"collection": ""}), 400, "InvalidParameter")
    refused(post(client, "find", {"collection": "books", "database": "admin"}), 404, "NotFound")
    refused(post(client, "frobnicate", {"collection": "books"}), 404, "NotFound")
    refused(client.post(f"{BASE}/nowhere", json={}), 404, "NotFound")
    wrong = client.get(f"{BASE}/action/find")
    refused(wrong, 405, "MethodNotAllowed")
    assert wrong.headers["Allow"] == "POST"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("not json", "InvalidParameter"),
        ("[]", "InvalidParameter"),
        ('"a string"', "InvalidParameter"),
        ("null", "InvalidParameter"),
        ("1e999", "InvalidParameter"),
        (
            '{"dataSource": "x", "database": "{db}", "collection": "books", "limit": 99999999999999999999999}',
            "InvalidParameter",
        ),
        (
            '{"dataSource": "x", "database": "{db}", "collection": "books", "filter": {"pages": 1e400}}',
            "InvalidParameter",
        ),
        ({"collection": "books", "limit": 10**12}, "InvalidParameter"),
        ({"collection": "books", "limit": -1}, "InvalidParameter"),
        ({"collection": "books", "skip": -5}, "InvalidParameter"),
        ({"collection": "books", "skip": 2**40}, "InvalidParameter"),
        ({"collection": "books", "limit": "5"}, "InvalidParameter"),
        ({"collection": "books", "limit": 2.5}, "InvalidParameter"),
        ({"collection": "books", "limit": True}, "InvalidParameter"),
        ({"collection": "books", "filter": []}, "InvalidParameter"),
        ({"collection": "books", "filter": "title"}, "InvalidParameter"),
        ({"collection": "books", "sort": {"title": 0}}, "InvalidParameter"),
        ({"collection": "books", "sort": {"reviews": 1}}, "InvalidParameter"),
        ({"collection": "books", "projection": {"title": 1, "pages": 0}}, "InvalidParameter"),
        ({"collection": "books", "projection": {"nope": 1}}, "InvalidParameter"),
        ({"collection": ["books"]}, "InvalidParameter"),
        ({"collection": 5}, "InvalidParameter"),
        ({"collection": "books", "dataSource": ""}, "InvalidParameter"),
        ({"collection": "books", "dataSource": None}, "InvalidParameter"),
        ({"collection": "books", "evil": 1}, "InvalidParameter"),
        ({"collection": "books", "document": {}}, "InvalidParameter"),
        ({"database": "x"}, "MissingParameter"),
    ],
)
def test_malformed_requests_are_4xx_in_the_data_api_shape(client: FlaskClient, body: Any, code: str) -> None:
    if isinstance(body, dict):
        response = post(client, "find", body)
    else:
        response = client.post(f"{BASE}/action/find", data=body.replace("{db}", database_name()), content_type=JSON)
    refused(response, 400, code)


def test_missing_members_wrong_types_and_deep_nesting_never_fail(client: FlaskClient, shelf: dict[str, Any]) -> None:
    refused(
        client.post(f"{BASE}/action/find", json={"database": database_name(), "collection": "books"}),
        400,
        "MissingParameter",
    )
    refused(post(client, "insertOne", {"collection": "books"}), 400, "MissingParameter")
    refused(post(client, "insertOne", {"collection": "books", "document": [1]}), 400, "InvalidParameter")
    refused(post(client, "insertMany", {"collection": "books", "documents": {"a": 1}}), 400, "InvalidParameter")
    refused(post(client, "insertMany", {"collection": "books", "documents": ["x"]}), 400, "InvalidParameter")
    refused(post(client, "insertMany", {"collection": "books", "documents": []}), 400, "InvalidParameter")
    refused(
        post(client, "updateOne", {"collection": "books", "update": {"$set": {"pages": 1}}, "upsert": "yes"}),
        400,
        "InvalidParameter",
    )
    refused(post(client, "updateOne", {"collection": "books", "update": []}), 400, "InvalidParameter")
    deep: Any = 1
    for _ in range(150):
        deep = {"a": deep}
    refused(post(client, "find", {"collection": "books", "filter": {"title": deep}}), 400, "InvalidParameter")
    nested: Any = "x"
    for _ in range(50):
        nested = {"$and": [{"title": nested}]}
    refused(post(client, "find", {"collection": "books", "filter": nested}), 400, "InvalidParameter")
    huge = {
        "collection": "books",
        "document": {"title": "T", "author": str(shelf["ursula"].id), "tags": ["x" * 40] * 5},
    }
    refused(post(client, "insertOne", huge), 422, "UnprocessableEntity")
    bad_ejson = {"collection": "books", "filter": {"_id": {"$oid": "not an id"}}}
    refused(post(client, "find", bad_ejson), 400, "InvalidParameter")
    weird = {
        "collection": "books",
        "document": {"title": "T", "author": str(shelf["ursula"].id), "pages": {"$numberDouble": "NaN"}},
    }
    assert post(client, "insertOne", weird).status_code in (400, 422)
    nul = {"collection": "books", "update": {"$set": {"title\u0000": 1}}}
    refused(post(client, "updateOne", nul), 400, "InvalidParameter")
    assert stored_count("books") == 3


def test_an_expensive_filter_counts_against_the_expensive_budget(mongodb_uri: str) -> None:
    with data_app(mongodb_uri, RESTENGINE_EXPENSIVE_RATE_LIMIT="1/minute", RESTENGINE_RATE_LIMIT="100/minute") as app:
        client = app.test_client()
        Author(name="Ursula K. Le Guin", bio="Earthsea").save()
        cheap = [
            post(client, "find", {"collection": "author", "filter": {"name": "Ursula K. Le Guin"}}) for _ in range(3)
        ]
        assert all(r.status_code == 200 for r in cheap), "an index serves name"
        scans = [post(client, "find", {"collection": "author", "filter": {"bio": "Earthsea"}}) for _ in range(2)]
        assert ok(scans[0])["documents"][0]["bio"] == "Earthsea"
        assert "expensive" in refused(scans[1], 429, "TooManyRequests")
        assert scans[1].headers["Retry-After"]


def test_rate_limits_refuse_in_the_data_api_shape(mongodb_uri: str) -> None:
    with data_app(mongodb_uri, RESTENGINE_WRITE_RATE_LIMIT="1/minute", RESTENGINE_RATE_LIMIT="100/minute") as app:
        client = app.test_client()
        author = Author(name="Ursula K. Le Guin").save()
        first = post(
            client,
            "insertOne",
            {"collection": "books", "document": {"title": "One", "author": str(author.id), "isbn": isbn()}},
        )
        second = post(
            client,
            "insertOne",
            {"collection": "books", "document": {"title": "Two", "author": str(author.id), "isbn": isbn()}},
        )
        ok(first)
        refused(second, 429, "TooManyRequests")
        assert ok(post(client, "find", {"collection": "books"}))["documents"][0]["title"] == "One"


def test_the_openapi_document_describes_every_action(client: FlaskClient, app: Flask) -> None:
    document = client.get("/openapi.json").get_json()
    actions = ("findOne", "find", "insertOne", "insertMany", "updateOne", "updateMany", "replaceOne")
    for action in (*actions, "deleteOne", "deleteMany", "aggregate"):
        operation = document["paths"][f"{BASE}/action/{action}"]["post"]
        assert set(operation["requestBody"]["content"]) == {JSON, EJSON}
        assert {"200", "400", "401", "404"} <= set(operation["responses"])
    data_api = app.extensions["restengine.data_api"]
    validate({"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": data_api.openapi_paths()})
    find = document["paths"][f"{BASE}/action/find"]["post"]["requestBody"]["content"][JSON]["schema"]
    assert (
        set(find["required"]) == {"dataSource", "database", "collection"}
        and "books" in find["properties"]["collection"]["enum"]
    )


# ---------------------------------------------------------------- the access policy: keys, hidden and read-only fields

POLICY = """
[anonymous]
products = ["read"]

[roles.clerk.customers]
actions = ["read", "create", "update", "delete"]
hidden = ["email"]
read_only = ["joined"]

[roles.clerk.orders]
actions = ["read", "update"]
where = { status = "open" }

[roles.admin]
"*" = ["read", "create", "update", "delete"]
"""


@pytest.fixture
def guarded(mongodb_uri: str, tmp_path: Path) -> Iterator[FlaskClient]:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    config = {"RESTENGINE_DATA_API": BASE, "RESTENGINE_DATA_API_AGGREGATE": "customers,orders"}
    with protected_app(mongodb_uri, None, RESTENGINE_POLICY=str(policy), **config) as app:
        ada = customer("ABC123", "Ada", tags=["vip"])
        pen = product("Pen", "1.50")
        order(ada, (pen, 2))
        order(ada, (pen, 1), status="paid")
        yield app.test_client()


def key(role: str) -> str:
    return KeyStore(lambda: restengine.db.get_database()[KEYS_COLLECTION]).create(role)[1]


def test_api_key_and_bearer_act_with_their_role(guarded: FlaskClient) -> None:
    clerk = key("clerk")
    by_header = post(guarded, "find", {"collection": "customers"}, headers={"apiKey": clerk})
    by_bearer = post(guarded, "find", {"collection": "customers"}, headers={"Authorization": f"Bearer {clerk}"})
    assert ok(by_header) == ok(by_bearer) and ok(by_header)["documents"][0]["_id"] == "ABC123"
    anonymous = post(guarded, "find", {"collection": "customers"})
    assert "Credentials are needed" in refused(anonymous, 401, "InvalidSession")
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    wrong = post(
        guarded, "find", {"collection": "customers"}, headers={"apiKey": "rek_0123456789abcdef_not-the-secret"}
    )
    assert "rek_0123456789abcdef_not-the-secret" not in refused(wrong, 401, "InvalidSession")
    assert len(ok(post(guarded, "find", {"collection": "products"}))["documents"]) == 1, "anonymous may read products"
    refused(
        post(guarded, "deleteMany", {"collection": "orders", "filter": {}}, headers={"apiKey": clerk}),
        403,
        "NoMatchingRuleFound",
    )
    refused(
        post(
            guarded,
            "insertOne",
            {"collection": "products", "document": {"name": "Ink", "price": "1"}},
            headers={"apiKey": clerk},
        ),
        403,
        "NoMatchingRuleFound",
    )
    admin = key("admin")
    assert ok(
        post(guarded, "deleteMany", {"collection": "orders", "filter": {"status": "paid"}}, headers={"apiKey": admin})
    ) == {"deletedCount": 1}


def test_hidden_and_read_only_fields_stay_out_of_reach(guarded: FlaskClient) -> None:
    clerk = {"apiKey": key("clerk")}
    for accept in (JSON, EJSON):
        document = ok(
            post(
                guarded,
                "findOne",
                {"collection": "customers", "filter": {"_id": "ABC123"}},
                headers=clerk,
                accept=accept,
            )
        )["document"]
        assert "email" not in document and "mail" not in document and document["name"] == "Ada", accept
    for body in (
        {"collection": "customers", "filter": {"email": "abc123@example.com"}},
        {"collection": "customers", "filter": {"mail": "abc123@example.com"}},
        {"collection": "customers", "projection": {"email": 1}},
        {"collection": "customers", "sort": {"email": 1}},
    ):
        refused(post(guarded, "find", body, headers=clerk), 400, "InvalidParameter")
    for update in (
        {"$set": {"email": "x@example.com"}},
        {"$set": {"joined": "2024-01-01T00:00:00Z"}},
        {"$unset": {"email": 1}},
    ):
        body = {"collection": "customers", "filter": {"_id": "ABC123"}, "update": update}
        assert "not a field you may change" in refused(
            post(guarded, "updateOne", body, headers=clerk), 400, "InvalidParameter"
        )
    replaced = {"collection": "customers", "filter": {"_id": "ABC123"}, "replacement": {"name": "Ada L."}}
    assert ok(post(guarded, "replaceOne", replaced, headers=clerk))["modifiedCount"] == 1
    raw = restengine.db.get_database()["customers"].find_one({"_id": "ABC123"})
    assert raw is not None and raw["name"] == "Ada L." and raw["mail"] == "abc123@example.com", "hidden fields are kept"
    created = {"collection": "customers", "document": {"_id": "NEW001", "name": "Nia", "email": "nia@example.com"}}
    refused(post(guarded, "insertOne", created, headers=clerk), 422, "UnprocessableEntity")
    leaks = [
        {"$project": {"e": "$email", "m": "$mail"}},
        {"$group": {"_id": "$mail", "n": {"$sum": 1}}},
    ]
    for stage in leaks:
        documents = ok(post(guarded, "aggregate", {"collection": "customers", "pipeline": [stage]}, headers=clerk))[
            "documents"
        ]
        assert "abc123@example.com" not in json.dumps(documents), stage


def test_a_row_rule_bounds_every_action(guarded: FlaskClient) -> None:
    clerk = {"apiKey": key("clerk")}
    documents = ok(post(guarded, "find", {"collection": "orders"}, headers=clerk))["documents"]
    assert [d["status"] for d in documents] == ["open"]
    noted = {"collection": "orders", "filter": {}, "update": {"$set": {"note": "checked"}}}
    assert ok(post(guarded, "updateMany", noted, headers=clerk)) == {"matchedCount": 1, "modifiedCount": 1}
    assert restengine.db.get_database()["orders"].count_documents({"note": "checked"}) == 1, "the paid order untouched"
    upsert = {"collection": "orders", "filter": {"note": "new"}, "update": {"$set": {"note": "x"}}, "upsert": True}
    refused(post(guarded, "updateOne", upsert, headers=clerk), 403, "NoMatchingRuleFound")
    leaving = {"collection": "orders", "filter": {}, "update": {"$set": {"status": "paid"}}}
    refused(post(guarded, "updateOne", leaving, headers=clerk), 403, "NoMatchingRuleFound")
    empty = {"collection": "orders", "filter": {}, "update": {"$set": {"lines": []}}}
    assert "at least one line" in refused(post(guarded, "updateOne", empty, headers=clerk), 422, "UnprocessableEntity")
    totals = ok(
        post(
            guarded,
            "aggregate",
            {"collection": "orders", "pipeline": [{"$group": {"_id": None, "n": {"$sum": 1}}}]},
            headers=clerk,
        )
    )
    assert totals["documents"] == [{"_id": None, "n": 1}], "the pipeline starts at the rule's documents"
    joined = [{"$lookup": {"from": "customers", "localField": "customer", "foreignField": "_id", "as": "who"}}]
    who = ok(post(guarded, "aggregate", {"collection": "orders", "pipeline": joined}, headers=clerk))["documents"][0][
        "who"
    ]
    assert who == [{"_id": "ABC123", "name": "Ada", "tags": ["vip"]}], "the joined customer as the clerk sees it"
    probe = [{"$lookup": {"from": "customers", "localField": "customer", "foreignField": "email", "as": "who"}}]
    refused(
        post(guarded, "aggregate", {"collection": "orders", "pipeline": probe}, headers=clerk), 400, "InvalidParameter"
    )
    stranger = [{"$lookup": {"from": "comment", "localField": "_id", "foreignField": "_id", "as": "c"}}]
    refused(
        post(guarded, "aggregate", {"collection": "orders", "pipeline": stranger}, headers=clerk),
        403,
        "NoMatchingRuleFound",
    )


def test_refusals_before_the_view_come_in_the_data_api_shape(mongodb_uri: str) -> None:
    """The rate limits answer before Flask runs (the default policy: everyone reads, the admin role writes)."""
    config = {"RESTENGINE_DATA_API": BASE, "RESTENGINE_AUTH": "on", "RESTENGINE_WRITE_RATE_LIMIT": "1/minute"}
    with legacy_registry():
        app = legacy_app(mongodb_uri, None, **config)
        try:
            client = app.test_client()
            insert = {"collection": "products", "document": {"name": "Ink", "price": "1"}}
            first, second = (post(client, "insertOne", insert) for _ in range(2))
            refused(first, 401, "InvalidSession")
            assert "Too many requests" in refused(second, 429, "TooManyRequests") and second.headers["Retry-After"]
            assert ok(post(client, "find", {"collection": "products"})) == {"documents": []}, (
                "reads keep their own budget"
            )
        finally:
            restengine.db.close_all()


def test_keys_of_every_kind_and_classes_sharing_a_collection(client: FlaskClient) -> None:
    sku = uuid.uuid4()
    inserted = ok(
        post(
            client,
            "insertOne",
            {"collection": "products", "document": {"_id": str(sku), "name": "Pen", "price": "1.50"}},
        )
    )
    assert inserted == {"insertedId": str(sku)}
    typed = ok(post(client, "findOne", {"collection": "products", "filter": {"_id": sku}}, ejson=True, accept=EJSON))
    assert typed["document"]["_id"] == sku and typed["document"]["name"] == "Pen"
    assert (
        ok(post(client, "findOne", {"collection": "products", "filter": {"_id": str(sku)}}))["document"]["price"]
        == "1.50"
    )
    assert ok(post(client, "insertOne", {"collection": "customers", "document": {"_id": "ABC123", "name": "Ada"}})) == {
        "insertedId": "ABC123"
    }
    circle = ok(post(client, "insertOne", {"collection": "circle", "document": {"name": "c", "radius": 2.0}}))
    ok(post(client, "insertOne", {"collection": "square", "document": {"name": "s", "side": 3.0}}))
    shapes = ok(post(client, "find", {"collection": "shapes", "sort": {"name": 1}}))["documents"]
    assert [(s["_cls"], s["name"]) for s in shapes] == [("Shape.Circle", "c"), ("Shape.Square", "s")]
    assert shapes[0]["_id"] == circle["insertedId"] and shapes[0]["radius"] == 2.0
    only = ok(post(client, "find", {"collection": "circle"}))["documents"]
    assert [s["name"] for s in only] == ["c"], "a subclass's resource reaches its own documents"
    grown = {"collection": "circle", "filter": {"name": "c"}, "update": {"$inc": {"radius": 0.5}}}
    assert ok(post(client, "updateOne", grown))["modifiedCount"] == 1
    assert ok(post(client, "findOne", {"collection": "circle"}, accept=EJSON))["document"]["radius"] == 2.5


def test_concurrent_increments_are_never_lost(app: Flask, shelf: dict[str, Any]) -> None:
    wizard = shelf["books"][0]
    body = {"collection": "books", "filter": {"_id": str(wizard.id)}, "update": {"$inc": {"pages": 1}}}

    def bump(_: int) -> int:
        client = app.test_client()
        return sum(ok(post(client, "updateOne", body))["modifiedCount"] for _ in range(10))

    with ThreadPoolExecutor(max_workers=3) as pool:
        modified = sum(pool.map(bump, range(3)))
    assert modified == 30 and stored(wizard.id)["pages"] == 183 + 30, "compare-and-set re-reads a changed document"
