"""Every kind of primary key on every route, against the real database (and Redis for the cached reads).

Each kind (``tests/pk_models.py``) runs the same list: POST (an object, an
array, with and without a client-given id), GET, HEAD, lists (``id=``,
``id__in=``, sorted by id, every page through ``next``), PUT, PATCH with
If-Match, DELETE, every ``_bulk`` operation, ``expand`` of a reference to it,
and the cached read path; ``Location``, ``id`` and ``next`` must lead back to
the stored documents.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest
from bson import Binary, Int64, ObjectId
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

import restengine.db
from restengine import create_app
from tests import pk_models
from tests.integration.api_helpers import ok, patch, problem
from tests.keys import TEST_SECRET

DOCUMENTS = "tests.pk_models"


@dataclasses.dataclass(frozen=True)
class Kind:
    """One kind of primary key: its resource, its Holder field, and how a client writes an id of it."""

    name: str
    attr: str  # the primary key's attribute name
    ref: str  # the Holder field referring to it
    new_id: Callable[[int], Any]  # a client-given id (a JSON value), distinct per number
    generates: bool  # the server gives an id when the client sends none
    representation: str = "pythonlegacy"  # RESTENGINE_UUID_REPRESENTATION
    bad_id: str | None = "not-an-id"  # a path segment that cannot be an id (a 404)

    def __str__(self) -> str:
        return self.name if self.representation == "pythonlegacy" else f"{self.name}-{self.representation}"


def _oid(n: int) -> str:
    return f"{n:024x}"


def _uuid(n: int) -> str:
    return str(uuid.UUID(int=(n * 0x9E3779B97F4A7C15) % (1 << 128)))


KINDS = [
    Kind("pk_oid", "id", "oid", _oid, True),
    Kind("pk_str", "name", "str_ref", lambda n: f"key {n:03d}/é?&", False, bad_id=None),
    Kind("pk_code", "code", "code", lambda n: f"C{n:03d}", False, bad_id=None),
    Kind("pk_int", "number", "int_ref", lambda n: n * 7 - 20, False),
    Kind("pk_long", "number", "long_ref", lambda n: 2**40 + n, False),
    Kind("pk_uuid_bin", "uid", "uuid_bin", _uuid, True),
    Kind("pk_uuid_bin", "uid", "uuid_bin", _uuid, True, representation="standard"),
    Kind("pk_uuid_str", "uid", "uuid_str", _uuid, True),
    Kind("pk_uuid_str", "uid", "uuid_str", _uuid, True, representation="standard"),
    Kind("pk_seq", "seq", "seq", lambda n: 1000 + n, True),
]


def make_app(mongodb_uri: str, kind: Kind, redis_url: str | None = None) -> Flask:
    settings: dict[str, Any] = {
        "MONGODB_URI": mongodb_uri,
        "RESTENGINE_DOCUMENTS": DOCUMENTS,
        "RESTENGINE_SECRET_KEY": TEST_SECRET,
        "RESTENGINE_UUID_REPRESENTATION": kind.representation,
    }
    if redis_url:
        settings["REDIS_URL"] = redis_url
    return create_app(settings)


@pytest.fixture(params=KINDS, ids=str)
def kind(request: pytest.FixtureRequest) -> Kind:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def client(mongodb_uri: str, kind: Kind) -> Iterator[FlaskClient]:
    app = make_app(mongodb_uri, kind)
    try:
        yield app.test_client()
    finally:
        restengine.db.close_all()


@pytest.fixture
def cached_client(mongodb_uri: str, redis_url: str, kind: Kind) -> Iterator[FlaskClient]:
    app = make_app(mongodb_uri, kind, redis_url)
    try:
        yield app.test_client()
    finally:
        restengine.db.close_all()


# ---------------------------------------------------------------- helpers


def text(value: Any) -> str:
    """A client-given id as the API shows it (``id`` is always a string)."""
    return str(value)


def item_path(kind: Kind, item_id: str) -> str:
    return f"/api/{kind.name}/{quote(item_id)}"  # a ``/`` in a string key stays one


def create(client: FlaskClient, kind: Kind, n: int, *, with_id: bool = True, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"title": f"t{n}", "rank": n % 3, **fields}
    if with_id:
        body["id"] = kind.new_id(n)
    response = client.post(f"/api/{kind.name}", json=body)
    item = ok(response, 201)
    location = urlsplit(response.headers["Location"])
    assert (location.scheme, location.netloc) == ("http", "localhost")
    assert unquote(location.path) == f"/api/{kind.name}/{item['id']}", location
    assert ok(client.get(response.headers["Location"])) == item
    return dict(item)


def stored_ids(kind: Kind, sort: int = 1) -> list[str]:
    """The ids as the database orders them (``_id`` ascending or descending), as the API shows them."""
    collection = restengine.db.get_database()[kind.name]
    return [str(raw["_id"]) for raw in collection.find({}, {"_id": 1}, sort=[("_id", sort)])]


def stored_id(kind: Kind, item_id: str) -> Any:
    """The one stored ``_id`` the API shows as ``item_id`` (its BSON type checked by the caller)."""
    collection = restengine.db.get_database()[kind.name]
    found = [raw["_id"] for raw in collection.find({}, {"_id": 1}) if str(raw["_id"]) == item_id]
    assert len(found) == 1, (item_id, found)
    return found[0]


def follow(client: FlaskClient, url: str) -> list[str]:
    """The ids of every page from ``url`` on, through the ``next`` links (absolute URLs)."""
    seen: list[str] = []
    pages = 0
    while url:
        response = client.get(url)
        body = ok(response)
        seen += [item["id"] for item in body["items"]]
        url = body["next"]
        if url:
            assert response.headers["Link"] == f'<{url}>; rel="next"'
        pages += 1
        assert pages < 20, "next links never end"
    return seen


def stored_type_ok(kind: Kind, stored: Any) -> bool:
    """Whether a stored ``_id`` has the BSON type its field writes."""
    if kind.name == "pk_oid":
        return isinstance(stored, ObjectId)
    if kind.name in ("pk_str", "pk_code", "pk_uuid_str"):
        return isinstance(stored, str)
    if kind.name == "pk_uuid_bin":
        return isinstance(stored, uuid.UUID)  # decoded with the representation it was written with
    return isinstance(stored, int) and not isinstance(stored, bool)


def raw_uuid_subtype(kind: Kind, item_id: str) -> int:
    """The BSON binary subtype a binary UUID key is stored with, read without decoding UUIDs."""
    from bson.binary import UuidRepresentation
    from bson.codec_options import CodecOptions

    database = restengine.db.get_database()
    collection = database.get_collection(
        kind.name, codec_options=CodecOptions(uuid_representation=UuidRepresentation.UNSPECIFIED)
    )
    for raw in collection.find({}, {"_id": 1}):
        value = raw["_id"]
        assert isinstance(value, Binary)
        if uuid.UUID(bytes=bytes(value)) == uuid.UUID(item_id):
            return int(value.subtype)
    raise AssertionError(f"{item_id} is not stored")


# ---------------------------------------------------------------- the routes


def test_create_with_and_without_client_id(client: FlaskClient, kind: Kind) -> None:
    given = create(client, kind, 1)
    assert given["id"] == text(kind.new_id(1)) and given["title"] == "t1"
    assert stored_type_ok(kind, stored_id(kind, given["id"]))
    if kind.generates:
        generated = create(client, kind, 2, with_id=False)
        assert generated["id"] and generated["id"] != given["id"]
        assert stored_type_ok(kind, stored_id(kind, generated["id"]))
        assert ok(client.get(item_path(kind, generated["id"])))["id"] == generated["id"]
    else:
        problem(client.post(f"/api/{kind.name}", json={"title": "no id"}), 422)
    again = client.post(f"/api/{kind.name}", json={"id": kind.new_id(1), "title": "dup"})
    problem(again, 409)
    if kind.name == "pk_uuid_bin":
        assert raw_uuid_subtype(kind, given["id"]) == (4 if kind.representation == "standard" else 3)


def test_create_array(client: FlaskClient, kind: Kind) -> None:
    body: list[dict[str, Any]] = [{"id": kind.new_id(n), "title": f"t{n}"} for n in (1, 2)]
    if kind.generates:
        body.append({"title": "t3"})
    items = ok(client.post(f"/api/{kind.name}", json=body), 201)["items"]
    assert [item["title"] for item in items] == [b["title"] for b in body]
    assert [item["id"] for item in items[:2]] == [text(kind.new_id(1)), text(kind.new_id(2))]
    assert sorted(stored_ids(kind)) == sorted(item["id"] for item in items)
    for item in items:
        assert ok(client.get(item_path(kind, item["id"])))["title"] == item["title"]


def test_get_head_and_unknown_ids(client: FlaskClient, kind: Kind) -> None:
    item = create(client, kind, 1)
    response = client.get(item_path(kind, item["id"]))
    assert ok(response) == item and response.headers["ETag"]
    head = client.head(item_path(kind, item["id"]))
    assert head.status_code == 200 and head.get_data() == b"" and head.headers["ETag"] == response.headers["ETag"]
    problem(client.get(item_path(kind, text(kind.new_id(9)))), 404)
    if kind.bad_id is not None:
        problem(client.get(item_path(kind, kind.bad_id)), 404)


def test_list_filters_sort_and_pages(client: FlaskClient, kind: Kind) -> None:
    created = [create(client, kind, n)["id"] for n in range(1, 8)]
    if kind.generates:
        created += [create(client, kind, n, with_id=False)["id"] for n in (8, 9)]
    one = ok(client.get(f"/api/{kind.name}", query_string={"id": created[3]}))["items"]
    assert [item["id"] for item in one] == [created[3]]
    two = ok(client.get(f"/api/{kind.name}", query_string={"id__in": f"{created[0]},{created[5]}", "sort": "id"}))
    assert sorted(item["id"] for item in two["items"]) == sorted([created[0], created[5]])
    assert follow(client, f"/api/{kind.name}?sort=id&limit=2") == stored_ids(kind, 1)
    assert follow(client, f"/api/{kind.name}?sort=-id&limit=3") == stored_ids(kind, -1)
    assert sorted(follow(client, f"/api/{kind.name}?limit=2")) == sorted(created)
    by_name = ok(client.get(f"/api/{kind.name}", query_string={kind.attr: created[2]}))["items"]
    assert [item["id"] for item in by_name] == [created[2]]
    assert follow(client, f"/api/{kind.name}?sort=-{kind.attr}&limit=4") == stored_ids(kind, -1)
    assert sorted(follow(client, f"/api/{kind.name}?sort=rank,-id&limit=2")) == sorted(created)


def test_put_patch_delete(client: FlaskClient, kind: Kind) -> None:
    item = create(client, kind, 1)
    path = item_path(kind, item["id"])
    replaced = ok(client.put(path, json={"title": "replaced", "rank": 5}))
    assert replaced["id"] == item["id"] and replaced["title"] == "replaced" and replaced["rank"] == 5
    etag = client.get(path).headers["ETag"]
    changed = patch(client, path, {"title": "patched"}, headers={"If-Match": etag})
    assert ok(changed)["title"] == "patched" and ok(changed)["id"] == item["id"]
    problem(patch(client, path, {"title": "stale"}, headers={"If-Match": etag}), 412)
    assert ok(client.get(path))["title"] == "patched"
    assert stored_ids(kind) == [item["id"]]
    assert client.delete(path, headers={"If-Match": client.get(path).headers["ETag"]}).status_code == 204
    problem(client.get(path), 404)
    assert stored_ids(kind) == []


def test_bulk(client: FlaskClient, kind: Kind) -> None:
    first, second, third = (create(client, kind, n)["id"] for n in (1, 2, 3))
    operations: list[dict[str, Any]] = [
        {"op": "insert", "document": {"id": kind.new_id(4), "title": "t4"}},
        {"op": "update", "id": first, "patch": {"title": "updated"}},
        {"op": "replace", "id": second, "document": {"title": "replaced"}},
        {"op": "delete", "id": third},
    ]
    if kind.generates:
        operations.append({"op": "insert", "document": {"title": "t5"}})
    results = ok(client.post(f"/api/{kind.name}/_bulk", json={"operations": operations}))["results"]
    assert [r["status"] for r in results] == [201, 200, 200, 204] + ([201] if kind.generates else []), results
    assert results[0]["id"] == text(kind.new_id(4))
    titles = {item["id"]: item["title"] for item in ok(client.get(f"/api/{kind.name}?limit=100"))["items"]}
    expected = {first: "updated", second: "replaced", text(kind.new_id(4)): "t4"}
    if kind.generates:
        expected[results[4]["id"]] = "t5"
    assert titles == expected
    assert sorted(stored_ids(kind)) == sorted(expected)
    for item_id in expected:
        assert stored_type_ok(kind, stored_id(kind, item_id))


def test_expand_a_reference(client: FlaskClient, kind: Kind) -> None:
    target = create(client, kind, 1)
    holder = ok(client.post("/api/pk_holders", json={"label": "h", kind.ref: kind.new_id(1)}), 201)
    assert holder[kind.ref] == target["id"]
    expanded = ok(client.get(f"/api/pk_holders/{holder['id']}", query_string={"expand": kind.ref}))
    assert expanded[kind.ref] == target
    listed = ok(client.get("/api/pk_holders", query_string={"expand": kind.ref, kind.ref: target["id"]}))
    assert [item[kind.ref] for item in listed["items"]] == [target]
    missing = client.post("/api/pk_holders", json={"label": "h", kind.ref: kind.new_id(2)})
    problem(missing, 422, kind.ref)


def test_cached_reads(cached_client: FlaskClient, kind: Kind) -> None:
    client = cached_client
    item = create(client, kind, 1)  # reads its Location once: a miss
    path = item_path(kind, item["id"])
    second = client.get(path)
    assert second.headers["X-Cache"] == "hit" and ok(second) == item
    listing = f"/api/{kind.name}?sort=id"
    assert [client.get(listing).headers["X-Cache"] for _ in range(2)] == ["miss", "hit"]
    ok(patch(client, path, {"title": "changed"}))
    after: TestResponse = client.get(path)
    assert after.headers["X-Cache"] == "miss" and ok(after)["title"] == "changed"
    assert client.get(path).headers["X-Cache"] == "hit"
    head = client.head(path)
    assert head.status_code == 200 and head.headers["X-Cache"] == "hit" and head.get_data() == b""
    assert [i["title"] for i in ok(client.get(listing))["items"]] == ["changed"]
    ok(
        client.post(
            f"/api/{kind.name}/_bulk",
            json={"operations": [{"op": "update", "id": item["id"], "patch": {"title": "bulk"}}]},
        )
    )
    assert ok(client.get(path))["title"] == "bulk"
    holder = ok(client.post("/api/pk_holders", json={"label": "h", kind.ref: item["id"]}), 201)
    expanded = f"/api/pk_holders/{holder['id']}?expand={kind.ref}"
    assert [client.get(expanded).headers["X-Cache"] for _ in range(2)] == ["miss", "hit"]
    ok(patch(client, path, {"title": "seen through expand"}))
    assert ok(client.get(expanded))[kind.ref]["title"] == "seen through expand"
    assert client.delete(f"/api/pk_holders/{holder['id']}").status_code == 204
    assert client.delete(path).status_code == 204
    problem(client.get(path), 404)


def test_idempotent_retries_replay(client: FlaskClient, kind: Kind) -> None:
    bodies: list[Any] = [{"id": kind.new_id(1), "title": "t1"}, [{"id": kind.new_id(2), "title": "t2"}]]
    if kind.generates:
        bodies += [{"title": "t3"}, [{"title": "t4"}]]
    for number, body in enumerate(bodies):
        key = {"Idempotency-Key": f'"pk-{number}"'}
        first = client.post(f"/api/{kind.name}", json=body, headers=key)
        again = client.post(f"/api/{kind.name}", json=body, headers=key)
        assert ok(first, 201) == ok(again, 201)
        assert first.headers.get("Location") == again.headers.get("Location")
    assert len(stored_ids(kind)) == len(bodies)
    operations = {"operations": [{"op": "update", "id": text(kind.new_id(1)), "patch": {"title": "b"}}]}
    key = {"Idempotency-Key": '"pk-bulk"'}
    assert ok(client.post(f"/api/{kind.name}/_bulk", json=operations, headers=key)) == ok(
        client.post(f"/api/{kind.name}/_bulk", json=operations, headers=key)
    )


def test_uuid_text_is_read_in_any_spelling(client: FlaskClient, kind: Kind) -> None:
    """A UUID key is one value however it is written: the stored form (and ``id``) is the canonical one."""
    if not kind.name.startswith("pk_uuid"):
        pytest.skip("UUID keys only")
    spelled = "{" + _uuid(1).upper() + "}"
    item = ok(client.post(f"/api/{kind.name}", json={"id": spelled, "title": "t"}), 201)
    assert item["id"] == _uuid(1) and stored_ids(kind) == [_uuid(1)]
    assert ok(client.get(item_path(kind, _uuid(1).upper())))["id"] == _uuid(1)
    problem(client.post(f"/api/{kind.name}", json={"id": _uuid(1), "title": "again"}), 409)


def test_documents_written_elsewhere(client: FlaskClient, kind: Kind) -> None:
    """Documents another program wrote (with the same UUID representation) are found by the ids the API shows."""
    doc_cls = next(c for c in CLASSES if c._get_collection_name() == kind.name)
    written = [doc_cls(**{kind.attr: pk_of(kind, n)}, title=f"t{n}").to_mongo().to_dict() for n in (1, 2, 3)]
    if kind.name == "pk_long":
        assert all(isinstance(raw["_id"], Int64) for raw in written)
    restengine.db.get_database()[kind.name].insert_many(written)
    shown = stored_ids(kind)
    assert sorted(item["id"] for item in ok(client.get(f"/api/{kind.name}"))["items"]) == sorted(shown)
    for item_id in shown:
        assert ok(client.get(item_path(kind, item_id)))["id"] == item_id
    ok(patch(client, item_path(kind, shown[0]), {"title": "patched"}))
    assert client.delete(item_path(kind, shown[1])).status_code == 204
    expected = {str(raw["_id"]): raw["title"] for raw in written} | {shown[0]: "patched"}
    del expected[shown[1]]
    assert {str(raw["_id"]): raw["title"] for raw in restengine.db.get_database()[kind.name].find()} == expected


def pk_of(kind: Kind, n: int) -> Any:
    """A primary key value as the Document takes it (client ids are JSON)."""
    value = kind.new_id(n)
    if kind.name == "pk_oid":
        return ObjectId(value)
    if kind.name.startswith("pk_uuid"):
        return uuid.UUID(value)
    return value


CLASSES = [c for c in vars(pk_models).values() if isinstance(c, type) and c.__module__ == pk_models.__name__]


def test_every_kind_is_covered() -> None:
    assert {c._get_collection_name() for c in CLASSES} - {"pk_holders"} == {kind.name for kind in KINDS}
