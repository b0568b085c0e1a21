"""The Eve profile, written from Eve's own documentation (python-eve.org: features, config, the tutorial):
the app on the real database and Redis, with the access policy, the rate limits and the shared cache on."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

import restengine.db
from restengine import create_app
from tests.integration.api_helpers import bookstore, editor
from tests.keys import TEST_SECRET


@pytest.fixture
def client(mongodb_uri: str, redis_url: str, tmp_path: Path) -> Iterator[FlaskClient]:
    with bookstore(mongodb_uri, "eve", policy=tmp_path / "policy.toml", REDIS_URL=redis_url) as app:
        yield app.test_client()


def q(value: Any) -> str:
    return quote(json.dumps(value))


def eve_error(response: TestResponse, status: int) -> dict[str, Any]:
    """Eve's error body: ``_status: ERR`` and ``_error`` with the status as its ``code``, as application/json."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body: dict[str, Any] = response.get_json()
    assert body["_status"] == "ERR" and body["_error"]["code"] == status and body["_error"]["message"], body
    return body


def test_the_home_lists_the_resources(client: FlaskClient) -> None:
    body = client.get("/api").get_json()
    assert {"href": "books", "title": "books"} in body["_links"]["child"]


def test_a_list_is_items_links_and_meta(client: FlaskClient) -> None:
    response = client.get("/api/books?max_results=5")
    body = response.get_json()
    assert set(body) == {"_items", "_links", "_meta"}
    assert body["_meta"] == {"page": 1, "max_results": 5, "total": 12} and response.headers["X-Total-Count"] == "12"
    links = body["_links"]
    assert links["parent"] == {"title": "home", "href": "/"}
    assert links["self"] == {"title": "books", "href": "books?max_results=5"}
    assert links["last"] == {"title": "last page", "href": "books?max_results=5&page=3"}
    assert links["next"]["href"].startswith("books?max_results=5&page=2&cursor=") and "prev" not in links
    item = body["_items"][0]
    assert item["_id"] == item["_links"]["self"]["href"].split("/")[1] and len(item["_etag"]) == 32
    assert item["published"] == "Sun, 02 Jan 2000 03:04:05 GMT"
    assert item["_links"]["related"]["author"]["href"] == f"author/{item['author']}"
    assert "price" not in item, "hidden from anonymous callers by the policy"


def test_walking_next_links_visits_every_item_once_and_deep_pages_are_offsets(client: FlaskClient) -> None:
    seen: list[str] = []
    href: str | None = "books?max_results=5&sort=-pages"
    pages = []
    while href:
        body = client.get("/api/" + href).get_json()
        pages.append(body)
        seen += [item["_id"] for item in body["_items"]]
        href = body["_links"].get("next", {}).get("href")
    assert len(seen) == len(set(seen)) == 12 and [p["_meta"]["page"] for p in pages] == [1, 2, 3]
    third = client.get("/api/books?max_results=5&sort=-pages&page=3").get_json()
    assert [i["_id"] for i in third["_items"]] == [i["_id"] for i in pages[2]["_items"]]
    assert third["_links"]["prev"]["href"] == "books?max_results=5&sort=-pages&page=2"


@pytest.mark.parametrize(
    ("where", "what"),
    [
        ({"$where": "sleep(1000)"}, "$where"),
        ({"title": {"$regex": ".*"}}, "$regex"),
        ({"$expr": {"$gt": ["$pages", 1]}}, "$expr"),
        ({"title__icontains": "no"}, "unknown field"),
        ({"price": {"$gt": 1}}, "unknown field"),  # hidden from this caller
        ({"pages": {"$gt": "many"}}, "pages"),
        ({"tags": {"$in": "math"}}, "list"),
        ({"$or": "x"}, "$or"),
        ([1], "object"),
    ],
)
def test_where_takes_only_allowed_fields_and_operators(client: FlaskClient, where: Any, what: str) -> None:
    body = eve_error(client.get("/api/books?where=" + q(where)), 400)
    assert what in body["_error"]["message"]


def test_where_sort_projection_and_embedded(client: FlaskClient) -> None:
    books = client.get(
        "/api/books?where=" + q({"tags": "math", "published": {"$gte": "Sat, 01 Jan 2005 00:00:00 GMT"}})
        + "&sort=" + quote('[("pages", -1)]') + "&projection=" + q({"title": 1, "author": 1})
        + "&embedded=" + q({"author": 1})
    ).get_json()["_items"]  # fmt: skip
    assert [b["title"] for b in books] == ["Notes 11", "Notes 09", "Notes 07", "Notes 05"]
    assert set(books[0]) == {"_id", "title", "author", "_etag", "_links"} and books[0]["author"]["name"]
    # Only date-time fields read RFC 1123 dates: a title that looks like one is matched as written.
    dated = "Sun, 02 Jan 2000 03:04:05 GMT"
    author = books[0]["author"]["_id"]
    assert client.post("/api/books", json={"title": dated, "author": author}, headers=editor()).status_code == 201
    assert [b["title"] for b in client.get("/api/books?where=" + q({"title": dated})).get_json()["_items"]] == [dated]
    embedded = client.get("/api/books?max_results=1&embedded=" + q({"author": 1})).get_json()["_items"][0]
    assert (
        embedded["author"]["name"] == "Ada Lovelace" and embedded["author"]["born"] == "Sun, 10 Dec 1815 00:00:00 GMT"
    )
    eve_error(client.get("/api/books?embedded=" + q({"title": 1})), 400)
    eve_error(client.get("/api/books?projection=" + q({"title": 1, "pages": 0})), 400)


def test_page_sizes_are_clamped_and_page_numbers_checked(client: FlaskClient) -> None:
    assert client.get("/api/books?max_results=5000").get_json()["_meta"]["max_results"] == 100
    for bad in ("page=0", "page=-1", "page=x", "max_results=0", "max_results=1e3"):
        eve_error(client.get(f"/api/books?{bad}"), 400)
    eve_error(client.get("/api/books?cursor=forged"), 400)


def test_items_carry_their_etag_and_refusals_are_eve_errors(client: FlaskClient) -> None:
    item_id = client.get("/api/books?max_results=1").get_json()["_items"][0]["_id"]
    response = client.get(f"/api/books/{item_id}")
    item = response.get_json()
    assert response.headers["ETag"] == f'"{item["_etag"]}"'
    assert item["_links"]["collection"] == {"title": "books", "href": "books"}
    assert client.get(f"/api/books/{item_id}", headers={"If-None-Match": response.headers["ETag"]}).status_code == 304
    eve_error(client.get("/api/books/5f0000000000000000000000"), 404)
    eve_error(client.get("/api/nothing"), 404)
    # Refused before any view runs (the access check), still in Eve's shape.
    eve_error(client.post("/api/books", json={"title": "x"}), 401)
    eve_error(client.post("/api/books", json={"title": "x"}, headers={"Authorization": "Bearer nope"}), 401)


def test_writes_need_if_match_and_answer_status_ok(client: FlaskClient) -> None:
    author = client.get("/api/author").get_json()["_items"][0]["_id"]
    new = {"title": "Sketches", "author": author, "published": "Tue, 02 Apr 2013 10:29:13 GMT", "price": 9.5}
    created = client.post("/api/books", json=new, headers=editor())
    body = created.get_json()
    assert created.status_code == 201 and body["_status"] == "OK" and body["price"] == 9.5, body
    assert body["published"] == "Tue, 02 Apr 2013 10:29:13 GMT" and created.headers["ETag"] == f'"{body["_etag"]}"'
    path = f"/api/books/{body['_id']}"
    eve_error(client.patch(path, json={"pages": 5}, headers=editor()), 428)
    eve_error(client.patch(path, json={"pages": 5}, headers={**editor(), "If-Match": "0" * 32}), 412)
    patched = client.patch(path, json={"pages": 5}, headers={**editor(), "If-Match": body["_etag"]})
    after = patched.get_json()
    assert patched.status_code == 200 and after["_status"] == "OK" and after["pages"] == 5
    assert after["_etag"] != body["_etag"] and patched.headers["ETag"] == f'"{after["_etag"]}"'
    replaced = client.put(
        path, json={"title": "Replaced", "author": author}, headers={**editor(), "If-Match": after["_etag"]}
    )
    assert replaced.status_code == 200 and replaced.get_json()["pages"] is None
    etag = replaced.get_json()["_etag"]
    assert client.delete(path, headers={**editor(), "If-Match": etag}).status_code == 204
    eve_error(client.get(path), 404)


def test_validation_failures_list_issues_per_field_and_per_item(client: FlaskClient) -> None:
    body = eve_error(client.post("/api/books", json={"title": 5}, headers=editor()), 422)
    assert set(body["_issues"]) == {"title", "author"}
    assert body["_error"]["message"] == "Insertion failure: 1 document(s) contain(s) error(s)"
    author = client.get("/api/author").get_json()["_items"][0]["_id"]
    before = client.get("/api/books").get_json()["_meta"]["total"]
    many = eve_error(
        client.post("/api/books", json=[{"title": "ok", "author": author}, {"title": "no author"}], headers=editor()),
        422,
    )
    assert [i["_status"] for i in many["_items"]] == ["OK", "ERR"] and "author" in many["_items"][1]["_issues"]
    assert client.get("/api/books").get_json()["_meta"]["total"] == before, "nothing written"
    pair = [{"title": t, "author": author, "isbn": f"97811111111{n}"} for n, t in enumerate(("a", "b"), 10)]
    created = client.post("/api/books", json=pair, headers=editor()).get_json()
    assert created["_status"] == "OK" and [i["_status"] for i in created["_items"]] == ["OK", "OK"]


def test_cached_lists_are_eve_shaped_and_embedded_ones_follow_the_referenced_item(client: FlaskClient) -> None:
    first = client.get("/api/books?max_results=3")
    again = client.get("/api/books?max_results=3")
    assert again.headers.get("X-Cache") == "hit" and again.get_json() == first.get_json()
    url = "/api/books?max_results=1&embedded=" + q({"author": 1})
    assert client.get(url).get_json()["_items"][0]["author"]["name"] == "Ada Lovelace"
    client.get(url)
    author = client.get("/api/author").get_json()["_items"][0]
    changed = client.patch(
        f"/api/author/{author['_id']}",
        json={"name": "Augusta Ada King"},
        headers={**editor(), "If-Match": author["_etag"]},
    )
    assert changed.status_code == 200, changed.get_json()
    assert client.get(url).get_json()["_items"][0]["author"]["name"] == "Augusta Ada King"


def test_rate_limited_callers_get_an_eve_error(mongodb_uri: str, redis_url: str) -> None:
    with bookstore(mongodb_uri, "eve", REDIS_URL=redis_url, RESTENGINE_RATE_LIMIT="2/minute") as app:
        client = app.test_client()
        assert [client.get("/api/books").status_code for _ in range(2)] == [200, 200]
        refused = client.get("/api/books")
        eve_error(refused, 429)
        assert int(refused.headers["Retry-After"]) >= 1 and "RateLimit-Policy" in refused.headers


def test_the_openapi_document_describes_the_eve_shapes(client: FlaskClient) -> None:
    from openapi_spec_validator import validate

    document = client.get("/openapi.json").get_json()
    validate(document)
    listing = document["paths"]["/api/books"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"where", "sort", "max_results", "page", "projection"}
    page = document["components"]["schemas"][
        listing["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    ]
    assert set(page["required"]) == {"_items", "_links", "_meta"}
    assert listing["responses"]["401"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/EveError"
    }
    assert document["paths"]["/api/books/{id}"]["patch"]["parameters"][1]["name"] == "If-Match"


def test_meta_dates_are_the_fields_stored_as_created_and_updated(mongodb_uri: str) -> None:
    app = create_app(
        {
            "MONGODB_URI": mongodb_uri,
            "RESTENGINE_DOCUMENTS": "tests.eve_models",
            "RESTENGINE_SECRET_KEY": TEST_SECRET,
            "RESTENGINE_PROFILE": "eve",
        }
    )
    try:
        client = app.test_client()
        created = client.post("/api/notes", json={"text": "hi", "_created": "Thu, 01 Jan 1970 00:00:00 GMT"})
        note = created.get_json()
        assert created.status_code == 201 and set(note) >= {"_created", "_updated"} and "created" not in note, note
        born = datetime.strptime(note["_created"], "%a, %d %b %Y %H:%M:%S GMT")
        assert born.year >= 2025 and note["_updated"] == note["_created"], "set by the server, not the client"
        stored = restengine.db.get_database()["notes"].find_one()
        assert stored is not None and set(stored) == {"_id", "text", "_created", "_updated"}
        time.sleep(1.1)
        path = f"/api/notes/{note['_id']}"
        replaced = client.put(path, json={"text": "again"}, headers={"If-Match": note["_etag"]}).get_json()
        assert replaced["_created"] == note["_created"] and replaced["_updated"] != note["_updated"]
        listed = client.get("/api/notes?where=" + q({"_id": note["_id"]})).get_json()["_items"][0]
        assert listed["_created"] == note["_created"]
    finally:
        restengine.db.close_all()


def test_a_cached_answer_never_shows_one_caller_what_another_may_see(client: FlaskClient) -> None:
    """An editor's list (with prices) is cached; an anonymous caller asking the same URL gets its own answer."""
    url = "/api/books?max_results=2"
    for _ in range(2):
        assert "price" in client.get(url, headers=editor()).get_json()["_items"][0]
    anonymous = client.get(url)
    assert anonymous.status_code == 200 and "price" not in anonymous.get_json()["_items"][0]
    assert "price" not in client.get(url).get_json()["_items"][0], "nor from the cache the second time"
    item = client.get(url).get_json()["_items"][0]["_id"]
    assert "price" in client.get(f"/api/books/{item}", headers=editor()).get_json()
    assert "price" not in client.get(f"/api/books/{item}").get_json()


@pytest.mark.parametrize("name", ["where", "projection", "embedded", "sort"])
def test_deeply_nested_json_parameters_are_a_400(client: FlaskClient, name: str) -> None:
    """A request line fits some 4,000 brackets (gunicorn's limit): more than the JSON parser's recursion allows."""
    eve_error(client.get(f"/api/books?{name}=" + "[" * 3000), 400)
