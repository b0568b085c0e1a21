"""``restengine doctor`` against the real database: seeded problems are found, the exit status follows, and
nothing in the database changes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from bson import ObjectId
from pymongo import MongoClient
from pymongo.database import Database

from tests.integration.api_helpers import run_cli

PROBLEMS = "tests.doctor_models"
CLEAN = "tests.doctor_clean_models"


@pytest.fixture
def database(mongodb_uri: str) -> Iterator[Database[dict[str, Any]]]:
    with MongoClient(mongodb_uri) as client:
        yield client.get_default_database()


def deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"end": 1}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def seed_problems(database: Database[dict[str, Any]]) -> dict[str, ObjectId]:
    """Articles with one known problem each (and their indexes, some declared, one not), through PyMongo."""
    articles = database.doctor_articles
    ids = {name: ObjectId() for name in ("good", "dup", "wrong_type", "undeclared", "missing", "byline", "deep")}
    articles.insert_many(
        [
            {"_id": ids["good"], "slug": "a", "code": "c1", "title": "Fine", "views": 3, "byline": {"name": "Ada"}},
            {"_id": ids["dup"], "slug": "a", "code": "c2", "title": "Same slug", "views": 4},
            {"_id": ids["wrong_type"], "slug": "b", "title": "Typed", "views": "many"},
            {"_id": ids["undeclared"], "slug": "c", "title": "Old", "old_field": 1},
            {"_id": ids["missing"], "slug": "d", "views": 5},
            {"_id": ids["byline"], "slug": "e", "title": "Nick", "byline": {"nick": "x"}},
            {"_id": ids["deep"], "slug": "f", "title": "Deep", "extra": deep(120)},
        ]
    )
    articles.create_index([("title", 1), ("_id", 1)])
    articles.create_index([("title", -1), ("_id", 1)])
    articles.create_index([("code", 1)])  # declared unique
    articles.create_index([("old_field", 1)])  # declared by no class
    # not created: the declared unique index on slug (and two articles share a slug)
    return ids


def state(database: Database[dict[str, Any]]) -> dict[str, Any]:
    """Everything the doctor could change: collections, their indexes (with options), their documents."""
    return {
        name: (
            sorted((info["name"], sorted(info.items())) for info in database[name].list_indexes()),
            list(database[name].find({}, sort=[("_id", 1)])),
        )
        for name in sorted(database.list_collection_names())
    }


def findings(mongodb_uri: str, *args: str, **env: str) -> tuple[int, list[dict[str, Any]]]:
    result = run_cli("doctor", "--json", *args, MONGODB_URI=mongodb_uri, **env)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def one(found: list[dict[str, Any]], kind: str, **match: Any) -> dict[str, Any]:
    hits = [f for f in found if f["kind"] == kind and all(f.get(k) == v for k, v in match.items())]
    assert len(hits) == 1, (kind, match, [f for f in found if f["kind"] == kind])
    return hits[0]


def test_doctor_finds_each_seeded_problem_and_changes_nothing(
    mongodb_uri: str, database: Database[dict[str, Any]]
) -> None:
    ids = seed_problems(database)
    before = state(database)
    status, found = findings(mongodb_uri, "--documents", PROBLEMS)
    assert status == 1
    assert all(set(f) >= {"resource", "kind", "detail"} and f["resource"] == "doctor_articles" for f in found)

    missing = one(found, "missing_index", index={"slug": 1})
    assert "unique" in missing["detail"] and "2 documents share slug='a'" in missing["detail"]
    assert "restengine indexes" in missing["fix"]
    assert "old_field_1" in one(found, "undeclared_index", index={"old_field": 1})["detail"]
    assert "unique" in one(found, "index_differs", index={"code": 1})["detail"]

    views = one(found, "unindexed_filter", field="views")
    assert views["index"] == {"views": 1} and '{"views": 1}' in views["fix"]
    assert one(found, "unindexed_filter", field="slug")["index"] == {"slug": 1}  # its declared index is missing
    assert one(found, "unindexed_sort", field="-views")["index"] == {"views": -1, "_id": 1}
    assert one(found, "unindexed_sort", field="views")["index"] == {"views": 1, "_id": 1}
    filtered = {f["field"] for f in found if f["kind"] == "unindexed_filter"}
    assert not filtered & {"title", "id", "code"}  # served by {title: 1, _id: 1}, _id_, code_1
    sorted_on = {f.get("field") for f in found if f["kind"] == "unindexed_sort"}
    assert "code" in sorted_on and not sorted_on & {"title", "-title", "-id"}  # code_1 lacks the _id tiebreak
    assert not [f for f in found if f["kind"] == "unindexed_sort" and f.get("field") is None]  # default sort: _id

    typed = one(found, "wrong_type", field="views")
    assert "stored str, expected an integer" in typed["detail"] and str(ids["wrong_type"]) in typed["detail"]
    assert "1 of 7 sampled documents" in typed["detail"] and "_unreadable" in typed["fix"]
    assert str(ids["missing"]) in one(found, "missing_required", field="title")["detail"]
    assert str(ids["byline"]) in one(found, "missing_required", field="byline.name")["detail"]
    assert str(ids["undeclared"]) in one(found, "undeclared_field", field="old_field")["detail"]
    assert str(ids["byline"]) in one(found, "undeclared_field", field="byline.nick")["detail"]
    deep_found = one(found, "too_deep")
    assert str(ids["deep"]) in deep_found["detail"] and "120 levels" in deep_found["detail"]
    assert not [f for f in found if f["kind"] in ("wrong_type", "too_deep") and f.get("field") == "extra"]

    text = run_cli("doctor", "--documents", PROBLEMS, MONGODB_URI=mongodb_uri)
    assert text.returncode == 1, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == "doctor_articles (collection doctor_articles):"
    assert len(lines) == len(found) + 2  # a header, one line a finding, the summary
    for kind in ("missing_index", "undeclared_index", "index_differs", "unindexed_filter", "unindexed_sort",
                 "wrong_type", "missing_required", "undeclared_field", "too_deep"):  # fmt: skip
        assert any(line.startswith(f"  {kind}: ") for line in lines), kind
    assert lines[-1].startswith(f"{len(found)} findings in 1 resource: ") and "7 stored documents sampled" in lines[-1]

    assert state(database) == before


def test_sample_zero_checks_no_stored_document(mongodb_uri: str, database: Database[dict[str, Any]]) -> None:
    seed_problems(database)
    status, found = findings(mongodb_uri, "--documents", PROBLEMS, "--sample", "0")
    assert status == 1
    kinds = {f["kind"] for f in found}
    assert kinds == {"missing_index", "undeclared_index", "index_differs", "unindexed_filter", "unindexed_sort"}


def test_a_fully_indexed_collection_needs_nothing(mongodb_uri: str, database: Database[dict[str, Any]]) -> None:
    database.doctor_labels.insert_many([{"name": f"label {i}"} for i in range(20)])
    first = run_cli("doctor", "--documents", CLEAN, MONGODB_URI=mongodb_uri)
    assert first.returncode == 1, first.stderr + first.stdout  # the declared indexes are not built yet
    assert "missing_index" in first.stdout
    assert run_cli("indexes", "--documents", CLEAN, MONGODB_URI=mongodb_uri).returncode == 0
    before = state(database)

    status, found = findings(mongodb_uri, "--documents", CLEAN)
    assert (status, found) == (0, [])
    text = run_cli("doctor", "--documents", CLEAN, MONGODB_URI=mongodb_uri)
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines() == [
        "nothing needs attention (1 resource, 1 collection, 20 stored documents sampled)"
    ]
    assert state(database) == before


def test_an_empty_database_lacks_the_declared_indexes(mongodb_uri: str, database: Database[dict[str, Any]]) -> None:
    status, found = findings(mongodb_uri, "--documents", CLEAN)
    assert status == 1
    assert {(f["kind"], json.dumps(f["index"])) for f in found} == {
        ("missing_index", '{"name": 1, "_id": 1}'),
        ("missing_index", '{"name": -1, "_id": 1}'),
        ("unindexed_filter", '{"name": 1}'),
        ("unindexed_sort", '{"name": 1, "_id": 1}'),
        ("unindexed_sort", '{"name": -1, "_id": 1}'),
    }
    assert database.list_collection_names() == []


def test_configuration_errors_exit_with_2(mongodb_uri: str) -> None:
    result = run_cli("doctor", "--documents", "no.such.module", MONGODB_URI=mongodb_uri)
    assert result.returncode == 2
    assert "RESTENGINE_DOCUMENTS" in result.stderr and "Traceback" not in result.stderr
    usage = run_cli("doctor", "--sample", "-1", MONGODB_URI=mongodb_uri)
    assert usage.returncode == 2 and "--sample" in usage.stderr


def test_the_app_option_audits_the_apps_documents_on_its_own_connection(mongodb_uri: str) -> None:
    theirs = mongodb_uri.replace("/t_", "/legacy_t_", 1)  # the host app connects MongoEngine itself, here
    with MongoClient(theirs) as client:
        client.get_default_database().bookmarks.insert_one({"url": "https://example.com", "owner": 3})
    status, found = findings(mongodb_uri, "--app", "tests.host_app:create_app('test')", LEGACY_MONGODB_URI=theirs)
    assert status == 1
    assert {f["resource"] for f in found} == {"bookmarks"}
    one(found, "missing_index", index={"owner": 1})
    one(found, "wrong_type", field="owner")
    with MongoClient(mongodb_uri) as client:
        assert client.get_default_database().list_collection_names() == []  # RestEngine's own: not read


def test_classes_sharing_a_collection_are_audited_together(
    mongodb_uri: str, database: Database[dict[str, Any]]
) -> None:
    database.vehicles.insert_many(
        [
            {"_cls": "Vehicle", "name": "v"},
            {"_cls": "Vehicle.Car", "name": "c", "seats": "four"},
            {"_cls": "Vehicle.Boat", "name": "b"},
        ]
    )
    database.vehicles.create_index([("_cls", 1), ("seats", 1)])
    status, found = findings(mongodb_uri, "--documents", "tests.stored_data_models")
    assert status == 1
    vehicles = [f for f in found if f["collection"] == "vehicles"]
    one(vehicles, "missing_index", index={"_cls": 1})  # MongoEngine's own, for a class with subclasses
    one(vehicles, "undeclared_index", index={"_cls": 1, "seats": 1})
    assert one(vehicles, "wrong_type", field="seats")["resource"] == "car"  # the document's own class
    assert one(vehicles, "wrong_type", field="_cls")["resource"] == "vehicles"
    # the car resource filters on _cls: the {_cls: 1, seats: 1} index serves its seats filter
    assert not [
        f for f in vehicles if f["kind"] == "unindexed_filter" and f["resource"] == "car" and f["field"] == "seats"
    ]
    assert [
        f for f in vehicles if f["kind"] == "unindexed_filter" and f["resource"] == "truck" and f["field"] == "load"
    ]


def test_a_filter_with_many_matches_in_the_default_order_needs_the_index_with_the_id(
    mongodb_uri: str, database: Database[dict[str, Any]]
) -> None:
    """``?views=7`` is served by ``{views: 1}`` but comes in ``_id`` order: with more matches than a page, every
    page reads and sorts them all until ``{views: 1, _id: 1}`` exists. A value matching a page or less, and a
    field whose index already ends with ``_id``, are not reported."""
    articles = database.doctor_articles
    articles.insert_many([{"slug": f"s{i}", "code": f"c{i}", "title": "Same", "views": 7} for i in range(101)])
    articles.create_index([("views", 1)])
    articles.create_index([("title", 1), ("_id", 1)])
    _, found = findings(mongodb_uri, "--documents", PROBLEMS)
    sort = one(found, "unindexed_filtered_sort", field="views")
    assert sort["index"] == {"views": 1, "_id": 1} and '("views", "id")' in sort["fix"]
    assert "more than 100 documents match" in sort["detail"] and "SORT" in sort["detail"]
    assert {f["field"] for f in found if f["kind"] == "unindexed_filtered_sort"} == {"views"}  # not title

    articles.create_index([("views", 1), ("_id", 1)])
    _, found = findings(mongodb_uri, "--documents", PROBLEMS)
    assert not [f for f in found if f["kind"] == "unindexed_filtered_sort"]
    articles.delete_many({"views": 7, "slug": {"$ne": "s0"}})  # one match now: no index needed
    articles.drop_index([("views", 1), ("_id", 1)])
    _, found = findings(mongodb_uri, "--documents", PROBLEMS)
    assert not [f for f in found if f["kind"] == "unindexed_filtered_sort"]
