"""The Flask-MongoRest profile, written from Flask-MongoRest's README and its ``ResourceView``/``Resource``
(0.3): the app on the real database and Redis, with the access policy on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.integration.api_helpers import bookstore, editor


@pytest.fixture
def client(mongodb_uri: str, redis_url: str, tmp_path: Path) -> Iterator[FlaskClient]:
    with bookstore(mongodb_uri, "mongorest", policy=tmp_path / "policy.toml", REDIS_URL=redis_url) as app:
        yield app.test_client()


def error(response: TestResponse, status: int) -> Any:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    return response.get_json()


def test_a_list_is_data_and_has_more_paged_by_skip_and_limit(client: FlaskClient) -> None:
    body = client.get("/api/books/?_limit=5").get_json()
    assert set(body) == {"data", "has_more"} and len(body["data"]) == 5 and body["has_more"] is True
    book = body["data"][0]
    assert isinstance(book["id"], str) and book["published"] == "2000-01-02T03:04:05" and "price" not in book
    last = client.get("/api/books/?_skip=10&_limit=5").get_json()
    assert len(last["data"]) == 2 and last["has_more"] is False
    assert client.get("/api/books?_limit=5").get_json() == body, "without the trailing slash too"
    walked = [
        b["id"] for skip in (0, 5, 10) for b in client.get(f"/api/books/?_skip={skip}&_limit=5").get_json()["data"]
    ]
    assert len(set(walked)) == 12


def test_filters_ordering_and_fields(client: FlaskClient) -> None:
    url = "/api/books/?tags=math&pages__gte=105&_order_by=-pages&_fields=title,pages,nonsense"
    data = client.get(url).get_json()["data"]
    assert [b["title"] for b in data] == ["Notes 11", "Notes 09", "Notes 07", "Notes 05"]
    assert set(data[0]) == {"id", "title", "pages"}
    assert len(client.get("/api/books/?title__exact=Notes 03").get_json()["data"]) == 1
    assert len(client.get("/api/books/?title__not__exact=Notes 03").get_json()["data"]) == 11
    assert len(client.get("/api/books/?pages__in=100,101,102").get_json()["data"]) == 3
    assert len(client.get("/api/books/?pages__not__in=100,101,102").get_json()["data"]) == 9
    assert len(client.get("/api/books/?title__startswith=Notes 1").get_json()["data"]) == 2


@pytest.mark.parametrize(
    "query",
    ["_limit=1000", "_limit=x", "_skip=-1", "price__gt=1", "title__not__contains=x", "pages__gte=many", "$where=1"],
)
def test_refused_queries_are_errors_in_its_shape(client: FlaskClient, query: str) -> None:
    body = error(client.get(f"/api/books/?{query}"), 400)
    assert set(body) == {"error"} and body["error"]


def test_items_create_update_and_delete(client: FlaskClient) -> None:
    book = client.get("/api/books/?_limit=1").get_json()["data"][0]
    fetched = client.get(f"/api/books/{book['id']}/").get_json()
    assert fetched == book
    error(client.get("/api/books/5f0000000000000000000000/"), 404)
    assert set(error(client.post("/api/books/", json={"title": "x"}), 401)) == {"error"}

    author = client.get("/api/author/").get_json()["data"][0]["id"]
    created = client.post("/api/books/", json={"title": "Sketches", "author": author}, headers=editor())
    assert created.status_code == 200, created.get_json()
    new = created.get_json()
    assert new["title"] == "Sketches" and new["author"] == author
    updated = client.put(f"/api/books/{new['id']}/", json={"pages": 77}, headers=editor())
    assert updated.status_code == 200 and updated.get_json()["pages"] == 77
    assert updated.get_json()["title"] == "Sketches", "a PUT sets what it is sent, as Flask-MongoRest's does"
    deleted = client.delete(f"/api/books/{new['id']}/", headers=editor())
    assert deleted.status_code == 200 and deleted.get_json() == {}
    error(client.get(f"/api/books/{new['id']}/"), 404)


def test_a_body_that_does_not_validate_names_its_fields(client: FlaskClient) -> None:
    body = error(client.post("/api/books/", json={"title": 5}, headers=editor()), 400)
    assert set(body) == {"field-errors"} and set(body["field-errors"]) == {"title", "author"}
    assert set(error(client.post("/api/books/", json=[{"title": "x"}], headers=editor()), 400)) == {"error"}
    assert client.put("/api/books/", json={"pages": 1}, headers=editor()).status_code == 405


def test_the_openapi_document_describes_the_mongorest_shapes(client: FlaskClient) -> None:
    from openapi_spec_validator import validate

    document = client.get("/openapi.json").get_json()
    validate(document)
    listing = document["paths"]["/api/books/"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {"_skip", "_limit", "_order_by", "_fields"}
    assert listing["responses"]["429"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/MongoRestError"
    }
    assert set(document["paths"]["/api/books/{id}/"]) == {"get", "put", "delete"}
