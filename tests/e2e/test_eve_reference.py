"""The Eve profile answers as a real Eve service does, over the same data.

A real Eve (tests.eve_reference_app, Eve from PyPI) and RestEngine with ``RESTENGINE_PROFILE=eve`` run side
by side under gunicorn on one database seeded with the demo bookstore. The same requests go to both and the
bodies are compared member by member, ignoring only what differs by nature: ``_etag`` (each hashes its own
serialization), ``_created``/``_updated`` (Eve invents them for documents it did not write; the bookstore's
classes have no such fields), and the keyset ``cursor`` RestEngine adds to ``next`` links. Writes are
compared on two fresh documents, one written through each service (a field such a document does not store
reads as its class's default in RestEngine, and is absent in Eve).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from tests.e2e.helpers import call, gunicorn
from tests.keys import TEST_SECRET

BY_NATURE = {"_etag", "_created", "_updated"}
CURSOR = re.compile(r"&cursor=[A-Za-z0-9_-]+")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, database_server: Any) -> Iterator[tuple[int, int]]:
    where = tmp_path_factory.mktemp("eve")
    uri = f"mongodb://127.0.0.1:{database_server.port}/eve_reference?directConnection=true"
    env = {"MONGODB_URI": uri, "RESTENGINE_SECRET_KEY": TEST_SECRET}
    subprocess.run(
        [sys.executable, "-m", "restengine.ops.cli", "seed"],
        env={**_environ(), **env, "RESTENGINE_SEED_BOOKS": "60"},
        check=True,
        capture_output=True,
    )
    with (
        gunicorn(where, env, app="tests.eve_reference_app:app") as (eve, _),
        gunicorn(where, {**env, "RESTENGINE_PROFILE": "eve"}, app="restengine.wsgi:app") as (ours, _),
    ):
        yield eve, ours


def _environ() -> dict[str, str]:
    import os

    return dict(os.environ)


def normalized(value: Any) -> Any:
    """``value`` without what differs by nature (see the module)."""
    if isinstance(value, dict):
        return {key: normalized(item) for key, item in value.items() if key not in BY_NATURE}
    if isinstance(value, list):
        return [normalized(item) for item in value]
    if isinstance(value, str):
        return CURSOR.sub("", value)
    return value


def both(servers: tuple[int, int], method: str, path: str, body: Any = None) -> tuple[Any, Any]:
    """The answers of Eve and of the profile to one request: (status, body) each."""
    eve, ours = servers
    answers = []
    for port in (eve, ours):
        status, _, data = call(port, method, path, body)
        answers.append((status, data))
    return answers[0], answers[1]


def q(value: Any) -> str:
    return quote(json.dumps(value, separators=(",", ":")))


def ids(servers: tuple[int, int]) -> tuple[str, str]:
    """A book's id and its author's."""
    status, body = call(servers[0], "GET", "/api/books?max_results=1")[0::2]
    assert status == 200, body
    book = body["_items"][0]
    return book["_id"], book["author"]


READS = [
    "/api",
    "/api/books?max_results=5",
    "/api/books?max_results=5&page=3",
    "/api/books?max_results=7&page=9",  # past the last page: empty, with prev
    "/api/books",
    "/api/author?max_results=2",
    "/api/books?where=" + q({"pages": {"$gt": 300}}) + "&sort=-pages&max_results=4&page=2",
    "/api/books?where=" + q({"tags": "fantasy"}) + "&projection=" + q({"title": 1, "tags": 1}) + "&max_results=3",
    "/api/books?sort=" + quote('[("price", -1)]') + "&max_results=3",
    "/api/books?sort=-published,title&max_results=3&page=2",
    "/api/books?embedded=" + q({"author": 1}) + "&max_results=2",
    "/api/books?where=" + q({"$or": [{"pages": {"$lt": 150}}, {"pages": {"$gt": 1100}}]}) + "&max_results=3",
    "/api/books?where=" + q({"in_stock": False, "currency": {"$in": ["EUR", "GBP"]}}) + "&max_results=3",
    "/api/books?where=" + q({"published": {"$gt": "Mon, 01 Jan 2001 00:00:00 GMT"}}) + "&sort=published&max_results=3",
    "/api/books?max_results=2&foo=bar",
]


@pytest.mark.parametrize("path", READS)
def test_lists_and_the_home_read_as_eve_answers_them(servers: tuple[int, int], path: str) -> None:
    (eve_status, eve_body), (status, body) = both(servers, "GET", path)
    assert eve_status == 200, eve_body
    if path == "/api":  # each lists its resources in the order it declares them
        for home in (body, eve_body):
            home["_links"]["child"].sort(key=lambda link: link["href"])
    assert (status, normalized(body)) == (eve_status, normalized(eve_body))


def test_items_read_as_eve_answers_them(servers: tuple[int, int]) -> None:
    book, author = ids(servers)
    for path in (
        f"/api/books/{book}",
        f"/api/books/{book}?embedded=" + q({"author": 1}),
        f"/api/books/{book}?projection=" + q({"title": 1, "pages": 1}),
        f"/api/author/{author}",
    ):
        (eve_status, eve_body), (status, body) = both(servers, "GET", path)
        assert eve_status == 200, (path, eve_body)
        assert (status, normalized(body)) == (eve_status, normalized(eve_body)), path


def test_a_missing_item_and_a_refused_query_are_eve_errors(servers: tuple[int, int]) -> None:
    (eve_status, eve_body), (status, body) = both(servers, "GET", "/api/books/5f0000000000000000000000")
    assert (
        (status, body["_status"], body["_error"]["code"]) == (eve_status, "ERR", 404) == (404, eve_body["_status"], 404)
    )
    # Eve refuses $where (its MONGO_QUERY_BLACKLIST); so does the profile, with the same status and shape.
    (eve_status, eve_body), (status, body) = both(servers, "GET", "/api/books?where=" + q({"$where": "1"}))
    assert eve_status == status == 400 and set(body) == set(eve_body) == {"_status", "_error"}, (eve_body, body)


NEW_BOOK = {
    "title": "Written Twice",
    "tags": ["reference", "e2e"],
    "price": 12.5,
    "currency": "EUR",
    "published": "Tue, 02 Apr 2013 10:29:13 GMT",
    "pages": 321,
    "in_stock": True,
}


def test_writes_answer_as_eve_does(servers: tuple[int, int]) -> None:
    _, author = ids(servers)
    answers = []
    for port, isbn in zip(servers, ("9780000009991", "9780000009992"), strict=True):
        status, _, created = call(port, "POST", "/api/books", {**NEW_BOOK, "author": author, "isbn": isbn})
        assert status == 201, created
        path = f"/api/books/{created['_id']}"
        missing = call(port, "PATCH", path, {"pages": 322})
        stale = call(port, "PATCH", path, {"pages": 322}, {"If-Match": "0" * 32})
        patched = call(port, "PATCH", path, {"pages": 322, "tags": ["patched"]}, {"If-Match": created["_etag"]})
        invalid = call(port, "POST", "/api/books", {"title": 5})
        many = call(port, "POST", "/api/books", [{"title": "x", "author": author}, {"title": "y"}])
        read = call(port, "GET", path)
        deleted = call(port, "DELETE", path, None, {"If-Match": read[2]["_etag"]})
        gone = call(port, "GET", path)
        answers.append((created, missing, stale, patched, invalid, many, read, deleted, gone))

    def same_but_ids(eve: Any, ours: Any) -> None:
        eve, ours = normalized(eve), normalized(ours)
        for shown in (eve, ours):
            if isinstance(shown, dict) and "_id" in shown:
                shown["_links"]["self"]["href"] = shown["_links"]["self"]["href"].rsplit("/", 1)[0]
                shown.pop("_id")
                shown.pop("isbn", None)
        # A field the new document does not store reads as its class's default (the class's own view of it);
        # Eve shows only what is stored.
        defaults = {k for k, v in ours.items() if k not in eve and v in (None, [], {})}
        assert {k: v for k, v in ours.items() if k not in defaults} == eve

    (created, missing, stale, patched, invalid, many, read, deleted, gone) = answers[0]
    (o_created, o_missing, o_stale, o_patched, o_invalid, o_many, o_read, o_deleted, o_gone) = answers[1]
    same_but_ids(created, o_created)
    assert patched[0] == o_patched[0] == 200, (patched, o_patched)
    same_but_ids(read[2], o_read[2])
    same_but_ids(patched[2], o_patched[2])
    assert patched[0] == o_patched[0] == 200
    for eve_answer, answer in ((missing, o_missing), (stale, o_stale), (gone, o_gone), (deleted, o_deleted)):
        assert answer[0] == eve_answer[0], (eve_answer, answer)
        if eve_answer[2] is not None:
            assert answer[2]["_status"] == eve_answer[2]["_status"] and set(answer[2]) == set(eve_answer[2])
            assert answer[2]["_error"]["code"] == eve_answer[2]["_error"]["code"]
    assert missing[0] == 428 and stale[0] == 412 and deleted[0] == 204 and gone[0] == 404
    # Validation: the same status, shape and failing fields (the messages are each validator's own words).
    for eve_answer, answer in ((invalid, o_invalid), (many, o_many)):
        assert answer[0] == eve_answer[0] == 422, (eve_answer, answer)
        assert set(answer[2]) == set(eve_answer[2]) and answer[2]["_error"] == eve_answer[2]["_error"]
    assert set(o_invalid[2]["_issues"]) == set(invalid[2]["_issues"]) == {"author", "title"}
    assert [item["_status"] for item in o_many[2]["_items"]] == [item["_status"] for item in many[2]["_items"]]
