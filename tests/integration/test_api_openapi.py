"""The OpenAPI document against the real service: every response below must be one it describes.

Each test makes real requests on the real app and database and checks the
answers with :class:`tests.openapi_contract.Contract`: the status is listed for
the operation, the media type and body validate against the document's
schema, and the declared headers are there and well-formed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import mongoengine
import pytest
from flask import Blueprint, Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate

from restengine import Api
from restengine.demo.bookstore import Author, Book, Review
from tests.integration.api_helpers import MERGE_PATCH, legacy_registry, ok, shop
from tests.keys import TEST_SECRET
from tests.legacy_models import Circle, Comment, Customer, Square
from tests.openapi_contract import Contract

BOOKS, BOOK = "/api/books", "/api/books/{id}"


@pytest.fixture
def contract(client: FlaskClient) -> Contract:
    spec = ok(client.get("/openapi.json"))
    validate(spec)
    return Contract(spec)


def bookshelf() -> tuple[Author, list[Book]]:
    ann = Author(name="Ann Author", born=datetime(1950, 5, 6), country="GB", bio="Writes.").save()
    books = [
        Book(
            title=f"Book {n}",
            isbn=f"978000000000{n}",
            author=ann,
            tags=["history", "sea"],
            price=Decimal("9.50") + n,
            currency="GBP",
            published=datetime(2001, 2, 3, 4, 5, 6, 789000),
            pages=100 + n,
            reviews=[Review(reviewer="Bo", rating=5, text="Good", created=datetime(2020, 1, 1))],
        ).save()
        for n in range(3)
    ]
    Book(title="Bare", author=ann).save()  # every optional field missing: they read as null or defaults
    return ann, books


def test_document_is_served_valid_with_an_etag_and_304(client: FlaskClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    spec = response.get_json()
    validate(spec)
    assert spec["openapi"] == "3.1.0" and spec["servers"] == [{"url": "/"}]
    contract = Contract(spec)
    contract.check("GET", "/openapi.json", response)
    again = client.get("/openapi.json", headers={"If-None-Match": response.headers["ETag"]})
    contract.check("GET", "/openapi.json", again)
    assert again.status_code == 304


def test_list_pages_with_links_counts_and_304(client: FlaskClient, contract: Contract) -> None:
    bookshelf()
    first = client.get("/api/books?limit=2&count=exact&sort=-price")
    body = contract.check("GET", BOOKS, first)
    assert len(body["items"]) == 2 and body["next"] and body["count"] == 4
    assert first.headers["Link"] and first.headers["X-Total-Count"] == "4"
    last = contract.check("GET", BOOKS, client.get(body["next"]))
    assert last["next"] is None and "count" in last
    bare = [item for item in last["items"] if item["title"] == "Bare"]
    assert bare and bare[0]["price"] is None and bare[0]["reviews"] == [] and bare[0]["in_stock"] is True
    unchanged = client.get(
        "/api/books?limit=2&count=exact&sort=-price", headers={"If-None-Match": first.headers["ETag"]}
    )
    assert unchanged.status_code == 304
    contract.check("GET", BOOKS, unchanged)
    projected = contract.check("GET", BOOKS, client.get("/api/books?fields=title,price&price__gte=10&tags=sea"))
    assert projected["items"] and all(set(item) == {"id", "title", "price"} for item in projected["items"])


def test_expanded_references_are_described(client: FlaskClient, contract: Contract) -> None:
    ann, _ = bookshelf()
    body = contract.check("GET", BOOKS, client.get("/api/books?expand=author"))
    assert all(item["author"]["id"] == str(ann.id) for item in body["items"])
    _, pen, placed = shop()
    order = contract.check(
        "GET", "/api/orders/{id}", client.get(f"/api/orders/{placed.id}?expand=customer,lines.product")
    )
    assert order["customer"]["id"] == "ABC123" and order["lines"][0]["product"]["id"] == str(pen.sku)
    contract.check("GET", "/api/orders", client.get("/api/orders?expand=lines.product"))


def test_items_of_every_kind_validate(client: FlaskClient, contract: Contract) -> None:
    ann, books = bookshelf()
    ada, pen, placed = shop()
    Comment(subject=ada, body="Hello", created=datetime(2024, 1, 2)).save()
    contract.check("GET", BOOK, client.get(f"/api/books/{books[0].id}"))
    contract.check("GET", "/api/author/{id}", client.get(f"/api/author/{ann.id}"))
    contract.check("GET", "/api/customers/{id}", client.get("/api/customers/ABC123"))
    product = contract.check("GET", "/api/products/{id}", client.get(f"/api/products/{pen.sku}"))
    assert product["blob"] and product["price"] == "12.50"
    contract.check("GET", "/api/orders/{id}", client.get(f"/api/orders/{placed.id}"))
    comments = contract.check("GET", "/api/comment", client.get("/api/comment"))
    assert comments["items"][0]["subject"] == {"_cls": "Customer", "id": "ABC123"}
    for path in ("/api/", "/", "/healthz"):
        contract.check("GET", path, client.get(path))


def test_subclasses_read_with_their_cls(client: FlaskClient, contract: Contract) -> None:
    circle = Circle(name="c", radius=1.5).save()
    Square(name="s", side=2.0).save()
    shapes = contract.check("GET", "/api/shapes", client.get("/api/shapes"))
    assert {item["_cls"] for item in shapes["items"]} == {"Shape.Circle", "Shape.Square"}
    contract.check("GET", "/api/shapes/{id}", client.get(f"/api/shapes/{circle.id}"))
    one = contract.check("GET", "/api/circle/{id}", client.get(f"/api/circle/{circle.id}"))
    assert one["_cls"] == "Shape.Circle" and one["radius"] == 1.5
    assert not contract.valid("Circle", {**one, "_cls": "Shape.Square"})
    assert not contract.valid("Shape", {**one, "side": 1.0}), "a circle has no side"
    created = client.post("/api/shapes", json={"_cls": "Shape.Square", "name": "q", "side": 3})
    assert contract.check("POST", "/api/shapes", created)["_cls"] == "Shape.Square"


def test_problems_are_described(client: FlaskClient, contract: Contract) -> None:
    _, books = bookshelf()
    missing = client.get("/api/books/000000000000000000000000")
    assert contract.check("GET", BOOK, missing)["status"] == 404
    bad_filter = client.get("/api/books?pages__gte=many")
    assert contract.check("GET", BOOKS, bad_filter)["errors"] == {"pages__gte": ["expected an integer"]}
    for url in ("/api/books?limit=0", "/api/books?sort=reviews", "/api/books?cursor=abc", "/api/books?fields=nope"):
        assert contract.check("GET", BOOKS, client.get(url))["status"] == 400
    url = f"/api/books/{books[0].id}"
    assert contract.check("PATCH", BOOK, client.patch(url, data="{", content_type=MERGE_PATCH))["status"] == 400
    unsupported = client.patch(url, data="{}", content_type="text/plain")
    assert contract.check("PATCH", BOOK, unsupported)["status"] == 415 and unsupported.headers["Accept-Patch"]
    stale = client.delete(url, headers={"If-Match": '"00000000000000000000000000000000"'})
    assert contract.check("DELETE", BOOK, stale)["status"] == 412
    denied = client.delete(f"/api/author/{books[0].author.id}")
    assert contract.check("DELETE", "/api/author/{id}", denied)["status"] == 409
    invalid = client.post(BOOKS, json={"title": "x" * 300, "author": str(books[0].author.id), "pages": 0})
    assert contract.check("POST", BOOKS, invalid)["status"] == 422


def test_writes_validate_both_ways(client: FlaskClient, contract: Contract) -> None:
    ann, _ = bookshelf()
    body = {"title": "Dune", "isbn": "9780441013593", "author": str(ann.id), "price": "9.99", "reviews": []}
    assert contract.request_errors("POST", BOOKS, body) == []
    created = client.post(BOOKS, json=body)
    item = contract.check("POST", BOOKS, created)
    assert created.status_code == 201 and created.headers["Location"].endswith(item["id"])
    many = [
        {"title": "A", "isbn": "9780000000101", "author": str(ann.id)},
        {"title": "B", "isbn": "9780000000102", "author": str(ann.id), "price": 3},
    ]
    assert contract.request_errors("POST", BOOKS, many) == []
    assert len(contract.check("POST", BOOKS, client.post(BOOKS, json=many))["items"]) == 2
    duplicate = client.post(BOOKS, json=body)
    assert contract.check("POST", BOOKS, duplicate)["status"] == 409

    url = f"/api/books/{item['id']}"
    replaced = {**item, "title": "Dune Messiah", "reviews": [{"reviewer": "Bo", "rating": 4}]}
    assert contract.request_errors("PUT", BOOK, replaced) == [], "a GET representation can be PUT back"
    put = client.put(url, json=replaced, headers={"If-Match": created.headers["ETag"]})
    assert contract.check("PUT", BOOK, put)["title"] == "Dune Messiah"
    patch_body = {"price": "8.99", "pages": None, "reviews": None}
    assert contract.request_errors("PATCH", BOOK, patch_body, MERGE_PATCH) == []
    patched = client.patch(url, json=patch_body, headers={"Content-Type": MERGE_PATCH})
    assert contract.check("PATCH", BOOK, patched)["price"] == "8.99"
    assert contract.check("DELETE", BOOK, client.delete(url)) is None
    assert contract.check("DELETE", BOOK, client.delete(url))["status"] == 404

    # What the service refuses, the document refuses too.
    for wrong in ({"title": "T"}, {**body, "unknown": 1}, {**body, "pages": "many"}, {**body, "currency": "XXX"}):
        assert contract.request_errors("POST", BOOKS, wrong), wrong
        assert client.post(BOOKS, json=wrong).status_code == 422


def test_bulk_results_and_conflicts(client: FlaskClient, contract: Contract) -> None:
    ann, books = bookshelf()
    request = {
        "ordered": True,
        "operations": [
            {"op": "insert", "document": {"title": "New", "isbn": "9780000000201", "author": str(ann.id)}},
            {"op": "update", "id": str(books[0].id), "patch": {"price": "1.00"}},
            {
                "op": "replace",
                "id": str(books[1].id),
                "document": {"title": "Re", "isbn": "9780000000202", "author": str(ann.id)},
            },
            {"op": "delete", "id": str(books[2].id)},
        ],
    }
    assert contract.request_errors("POST", "/api/books/_bulk", request) == []
    done = contract.check("POST", "/api/books/_bulk", client.post("/api/books/_bulk", json=request))
    assert [r["status"] for r in done["results"]] == [201, 200, 200, 204]
    clash = {"ordered": True, "operations": [
        {"op": "insert", "document": {"title": "A", "isbn": books[0].isbn, "author": str(ann.id)}},
        {"op": "insert", "document": {"title": "B", "isbn": "9780000000301", "author": str(ann.id)}},
    ]}  # fmt: skip
    failed = client.post("/api/books/_bulk", json=clash)
    assert failed.status_code == 409
    assert [r["status"] for r in contract.check("POST", "/api/books/_bulk", failed)["results"]] == [409, None]
    refused = client.post("/api/books/_bulk", json={"operations": [{"op": "explode"}]})
    assert contract.check("POST", "/api/books/_bulk", refused)["status"] == 422


@pytest.fixture
def options_app(mongodb_uri: str) -> Iterator[Flask]:
    """A legacy app with the API on a Blueprint under /v1, with restrictive options."""
    with legacy_registry():
        mongoengine.connect(host=mongodb_uri, alias="default", uuidRepresentation="standard")
        app = Flask("legacy")
        bp = Blueprint("rest", __name__)
        api = Api(bp, secret_key=TEST_SECRET, openapi_info={"title": "Legacy shop"})
        api.register(
            Customer, hidden=["email"], read_only=["joined"], methods=["GET", "POST"], filterable={"name": ["eq"]}
        )
        api.register(Author, fields=["name", "country"], sortable=["name"])
        app.register_blueprint(bp, url_prefix="/v1")
        yield app
        mongoengine.disconnect()


def test_options_and_blueprint_mount(options_app: Flask) -> None:
    client = options_app.test_client()
    spec = ok(client.get("/v1/openapi.json"))
    validate(spec)
    contract = Contract(spec)
    assert spec["info"]["title"] == "Legacy shop"
    assert set(spec["paths"]) == {
        "/v1/api/",
        "/v1/openapi.json",
        "/v1/api/customers",
        "/v1/api/customers/_bulk",
        "/v1/api/customers/{id}",
        "/v1/api/author",
        "/v1/api/author/_bulk",
        "/v1/api/author/{id}",
    }
    assert set(spec["paths"]["/v1/api/customers/{id}"]) == {"parameters", "get"}
    Customer(code="ABC123", name="Ada", email="a@example.com", joined=datetime(2024, 1, 2)).save()
    Author(name="Zed", country="NZ", bio="hidden by fields").save()
    got = contract.check("GET", "/v1/api/customers/{id}", client.get("/v1/api/customers/ABC123"))
    assert "email" not in got and got["joined"] == "2024-01-02T00:00:00Z"
    contract.check("GET", "/v1/api/customers", client.get("/v1/api/customers?name=Ada"))
    authors = contract.check("GET", "/v1/api/author", client.get("/v1/api/author?sort=-name"))
    assert set(authors["items"][0]) == {"id", "name", "country"}
    new = {"code": "NEW001", "name": "Nia"}
    assert contract.request_errors("POST", "/v1/api/customers", new) == []
    contract.check("POST", "/v1/api/customers", client.post("/v1/api/customers", json=new))
    read_only = {**new, "code": "NEW002", "joined": "2024-01-01T00:00:00Z"}
    assert contract.request_errors("POST", "/v1/api/customers", read_only)
    assert client.post("/v1/api/customers", json=read_only).status_code == 422
    bad = client.get("/v1/api/customers?email=a@example.com")
    assert contract.check("GET", "/v1/api/customers", bad)["status"] == 400


def test_uuid_keys_and_binary(client: FlaskClient, contract: Contract) -> None:
    body = {"id": str(uuid.uuid4()), "name": "Ink", "price": 2, "blob": "AAEC"}
    assert contract.request_errors("POST", "/api/products", body) == []
    created = contract.check("POST", "/api/products", client.post("/api/products", json=body))
    assert created == {"id": body["id"], "name": "Ink", "price": "2.00", "blob": "AAEC"}
    wrong: dict[str, Any] = {**body, "id": str(uuid.uuid4()), "name": "Ink 2", "blob": "not base64!"}
    assert contract.request_errors("POST", "/api/products", wrong)
    assert client.post("/api/products", json=wrong).status_code == 422


# Each of these was a 500 (found while writing the document): a client mistake must be a 422 it describes.
# The last item: whether the schema itself refuses the body (an id's form that depends on a generic
# reference's _cls, or a decimal string's magnitude, is beyond what it can say).
CLIENT_MISTAKES = [
    ("/api/books", {"title": "t", "author": "xyz"}, True),  # not an ObjectId
    ("/api/books", {"title": "t", "author": "{author}", "id": "xyz"}, True),
    ("/api/comment", {"body": "b", "subject": {"_cls": "Order", "id": "xyz"}}, False),
    ("/api/books/_bulk", {"operations": [{"op": "delete", "id": "xyz"}]}, True),
    ("/api/books", {"title": "t", "author": "{author}", "price": "NaN"}, True),  # Decimal quantize
    ("/api/books", {"title": "t", "author": "{author}", "price": "1e40"}, False),
    ("/api/books", {"title": "t", "author": "{author}", "price": 1e40}, True),
    ("/api/books", {"title": "t", "author": "{author}", "pages": 2**63}, True),  # more than BSON stores
    ("/api/books", {"title": "t", "author": "{author}", "reviews": [None]}, True),  # MongoEngine _from_son(None)
    ("/api/books/_bulk", {"operations": [{"op": "delete"}]}, True),  # no id
]


@pytest.mark.parametrize(("path", "body", "refused"), CLIENT_MISTAKES)
def test_client_mistakes_in_bodies_are_422(
    client: FlaskClient, contract: Contract, path: str, body: Any, refused: bool
) -> None:
    author = Author(name="A").save()
    sent = json.loads(json.dumps(body).replace("{author}", str(author.id)))
    assert bool(contract.request_errors("POST", path, sent)) is refused
    response = client.post(path, json=sent)
    assert contract.check("POST", path, response)["status"] == 422


def test_dates_before_year_1000_read_as_rfc_3339(client: FlaskClient, contract: Contract) -> None:
    created = client.post("/api/author", json={"name": "Bede", "born": "0673-01-01"})
    assert contract.check("POST", "/api/author", created)["born"] == "0673-01-01T00:00:00Z"


def test_bulk_offers_only_the_operations_the_methods_allow(options_app: Flask) -> None:
    client = options_app.test_client()
    spec = ok(client.get("/v1/openapi.json"))
    body = spec["paths"]["/v1/api/customers/_bulk"]["post"]["requestBody"]["content"]["application/json"]
    kinds = [k["properties"]["op"]["const"] for k in body["schema"]["properties"]["operations"]["items"]["oneOf"]]
    assert kinds == ["insert"], "customers allow GET and POST only"
    Customer(code="ABC123", name="Ada", email="a@example.com").save()
    for operation in ({"op": "delete", "id": "ABC123"}, {"op": "update", "id": "ABC123", "patch": {"name": "X"}}):
        response = client.post("/v1/api/customers/_bulk", json={"operations": [operation]})
        assert response.status_code == 422, response.get_data(as_text=True)
        assert "insert" in response.get_json()["errors"]["0"]["op"]
    assert Customer.objects(code="ABC123").first().name == "Ada", "nothing deleted or changed"
