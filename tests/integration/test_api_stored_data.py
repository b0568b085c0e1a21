"""Stored data never breaks a read; ``_cls`` of subclasses and of embedded documents (issue 12).

Documents are written with PyMongo, bypassing MongoEngine, the way legacy code or another
service leaves them; the API reads them as ``null`` with their paths in ``_unreadable``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import gridfs
import pytest
from bson import Decimal128, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.codec_options import DatetimeConversion
from flask import Flask
from flask.testing import FlaskClient

import restengine.db
from restengine.api import codec
from tests.integration.api_helpers import api_app, nested, ok, patch, problem, raw
from tests.stored_data_models import Gear, Legacy, Scan, Spring, Truck

DOCUMENTS = "tests.stored_data_models"


@pytest.fixture
def app(mongodb_uri: str) -> Iterator[Flask]:
    with api_app(mongodb_uri, DOCUMENTS) as app:
        app.extensions["restengine.api"].register(Truck, read_only=["approved"], hidden=["secret"])
        yield app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def store(collection: str, **fields: Any) -> ObjectId:
    pk = ObjectId()
    restengine.db.get_database()[collection].insert_one({"_id": pk, **fields})
    return pk


# (stored members, the paths that read as null)
LEGACY = {
    "nested 300 levels in a free list": ({"anything": nested(300)}, ["anything.0"]),
    "nested 120 levels in a dict": ({"settings": json.loads('{"a":' * 120 + "1" + "}" * 120)}, ["settings"]),
    "a string in an IntField": ({"count": "12"}, ["count"]),
    "true in an IntField": ({"count": True}, ["count"]),
    "a dict in a StringField": ({"title": {"a": 1}}, ["title"]),
    "a list where an embedded document is expected": ({"part": [1, 2]}, ["part"]),
    "an int in a DateTimeField": ({"when": 5}, ["when"]),
    "a Timestamp in a DateTimeField": ({"when": Timestamp(1, 2)}, ["when"]),
    "an invalid ObjectId in a ReferenceField": ({"target": "zz"}, ["target"]),
    "a dict in a ReferenceField": ({"target": {"x": 1}}, ["target"]),
    "a Regex in a dict": ({"settings": {"r": Regex("a.*")}}, ["settings"]),
    "MinKey in an IntField": ({"count": MinKey()}, ["count"]),
    "MaxKey in a dict": ({"settings": {"m": MaxKey()}}, ["settings"]),
    "Decimal128 NaN in a DecimalField": ({"amount": Decimal128("NaN")}, ["amount"]),
    "Decimal128 NaN in a free list": ({"anything": [1, Decimal128("NaN")]}, ["anything.1"]),
    "text in a DecimalField": ({"amount": "abc"}, ["amount"]),
    "NaN in a FloatField": ({"ratio": float("nan")}, ["ratio"]),
    "infinity in a free list": ({"anything": [float("inf")]}, ["anything.0"]),
    "text in a UUIDField": ({"uid": "not-a-uuid"}, ["uid"]),
    "text in a BooleanField": ({"flag": "yes"}, ["flag"]),
    "a string where a list is expected": ({"tags": "a,b"}, ["tags"]),
    "elements of the wrong type": ({"tags": ["ok", 1, {"a": 1}]}, ["tags.1", "tags.2"]),
    "a map value of the wrong type": ({"counts": {"a": 1, "b": "x"}}, ["counts.b"]),
    "an unknown embedded _cls": ({"part": {"_cls": "Nope", "name": "x"}}, ["part._cls"]),
    "an embedded _cls of another class": ({"parts": [{"_cls": "Legacy"}, 3]}, ["parts.0._cls", "parts.1"]),
}


@pytest.mark.parametrize("case", LEGACY)
def test_legacy_values_read_as_null_listed_in_unreadable(client: FlaskClient, case: str) -> None:
    stored, unreadable = LEGACY[case]
    target = store("targets", label="T")
    pk = store("legacy", **{"title": "t", "target": target, "count": 3, **stored})
    item = ok(client.get(f"/api/legacy/{pk}"))
    assert item["_unreadable"] == unreadable
    for path in unreadable:
        value: Any = item
        for step in path.split("."):
            value = value[int(step)] if isinstance(value, list) else value[step]
        assert value is None, path
    assert item["title"] == (None if "title" in stored else "t")
    listed = ok(client.get("/api/legacy?count=exact"))
    assert listed["items"] == [item] and listed["count"] == 1
    first = unreadable[0].split(".")[0]
    some = ok(client.get(f"/api/legacy?fields={first}"))["items"][0]
    assert some == {"id": str(pk), first: item[first], "_unreadable": unreadable}
    if "target" not in stored:
        expanded = ok(client.get(f"/api/legacy/{pk}?expand=target"))
        assert expanded["target"] == {"id": str(target), "label": "T"} and expanded["_unreadable"] == unreadable
        assert ok(client.get("/api/legacy?expand=target"))["items"] == [expanded]


def test_reads_decode_out_of_range_dates_without_failing_the_query(app: Flask) -> None:
    resource = app.extensions["restengine.api"].resources["legacy"]
    assert resource.collection().codec_options.datetime_conversion == DatetimeConversion.DATETIME_AUTO
    assert resource.collection() is resource.collection()


def test_a_readable_document_has_no_unreadable_member(client: FlaskClient) -> None:
    pk = store("legacy", title="t", count=3, anything=nested(90), settings={"a": [1, {"b": 2}]})
    item = ok(client.get(f"/api/legacy/{pk}"))
    assert "_unreadable" not in item and item["count"] == 3 and item["settings"] == {"a": [1, {"b": 2}]}


def test_unreadable_items_keep_their_etag_and_are_served_from_the_cache(client: FlaskClient) -> None:
    pk = store("legacy", title="t", count="12", settings={"r": Regex("x")})
    first = client.get(f"/api/legacy/{pk}")
    second = client.get(f"/api/legacy/{pk}")
    assert first.status_code == second.status_code == 200
    assert first.headers["ETag"] == second.headers["ETag"] and first.data == second.data
    assert second.headers.get("X-Cache") == "hit", dict(second.headers)
    assert client.get(f"/api/legacy/{pk}", headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    pages = [client.get("/api/legacy?count=exact") for _ in range(2)]
    assert pages[0].headers["ETag"] == pages[1].headers["ETag"] and pages[1].headers.get("X-Cache") == "hit"


def test_each_unreadable_field_is_logged_once(
    client: FlaskClient, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(codec, "_reported", set())  # once per process: forget what earlier tests logged
    ids = [store("legacy", title="t", parts=[{"name": "p", "size": "big"}] * 2, flag="no") for _ in range(3)]
    with caplog.at_level(logging.WARNING, logger="restengine.api.codec"):
        for pk in ids:
            assert ok(client.get(f"/api/legacy/{pk}"))["_unreadable"] == ["flag", "parts.0.size", "parts.1.size"]
        ok(client.get("/api/legacy?limit=10"))
    warnings = [r.getMessage() for r in caplog.records if r.name == "restengine.api.codec"]
    assert len(warnings) == 2, warnings  # flag, parts.*.size
    assert all("collection legacy" in w and str(ids[0]) in w for w in warnings), warnings
    assert any("field flag" in w and "expected true or false" in w for w in warnings), warnings


def test_a_patch_keeps_unreadable_values_stored_and_answers_as_a_get(client: FlaskClient) -> None:
    pk = store("legacy", title="t", count="12", zzz="undeclared", part=[1], tags=["a", 2])
    got = client.get(f"/api/legacy/{pk}")
    assert got.get_json()["_unreadable"] == ["count", "part", "tags.1"]
    changed = patch(client, f"/api/legacy/{pk}", {"title": "new"}, headers={"If-Match": got.headers["ETag"]})
    body = ok(changed)
    assert body["title"] == "new" and body["_unreadable"] == ["count", "part", "tags.1"]
    again = client.get(f"/api/legacy/{pk}")
    assert again.headers["ETag"] == changed.headers["ETag"] and again.get_json() == body
    stored = raw("legacy", pk)
    assert stored["count"] == "12" and stored["zzz"] == "undeclared" and stored["part"] == [1]
    assert stored["tags"] == ["a", 2]
    # setting an unreadable field replaces it; a PUT leaving one out resets it
    fixed = ok(patch(client, f"/api/legacy/{pk}", {"count": 5, "_unreadable": None}))
    assert fixed["count"] == 5 and fixed["_unreadable"] == ["part", "tags.1"]
    # a PUT repeating the null keeps the value; one leaving the field out resets it
    assert ok(client.put(f"/api/legacy/{pk}", json=fixed))["_unreadable"] == ["part", "tags.1"]
    del fixed["part"]
    replaced = ok(client.put(f"/api/legacy/{pk}", json={**fixed, "tags": ["a"]}))
    assert "_unreadable" not in replaced and raw("legacy", pk)["tags"] == ["a"] and "part" not in raw("legacy", pk)


def test_a_patch_of_a_document_missing_a_required_field_names_it(client: FlaskClient) -> None:
    pk = store("legacy", count=1, title={"not": "text"})
    problem(patch(client, f"/api/legacy/{pk}", {"count": 2}), 422, "title")
    assert ok(patch(client, f"/api/legacy/{pk}", {"title": "now"}))["title"] == "now"


def test_a_stray_or_unknown_document_cls_breaks_no_read(client: FlaskClient) -> None:
    pk = store("vehicles", _cls="Vehicle.Plane", name="p")  # MongoEngine's queries never match it
    problem(client.get(f"/api/vehicles/{pk}"), 404)
    assert ok(client.get("/api/vehicles?count=exact")) == {"items": [], "next": None, "count": 0}
    pk = store("legacy", _cls="Nope", title="t")  # a class without inheritance ignores it
    item = ok(client.get(f"/api/legacy/{pk}"))
    assert item["title"] == "t" and "_cls" not in item and "_unreadable" not in item
    assert ok(patch(client, f"/api/legacy/{pk}", {"count": 1}))["count"] == 1


# ---------------------------------------------------------------- polymorphic embedded documents


def test_a_polymorphic_embedded_document_keeps_its_class(client: FlaskClient) -> None:
    created = ok(
        client.post(
            "/api/legacy",
            json={
                "title": "t",
                "part": {"_cls": "Gear", "name": "g", "teeth": 12},
                "parts": [{"_cls": "Spring", "stiffness": 1.5}, {"name": "plain"}, {"_cls": "Gear", "teeth": 3}],
            },
        ),
        201,
    )
    pk = ObjectId(created["id"])
    assert created["part"] == {"_cls": "Gear", "name": "g", "size": None, "teeth": 12}
    assert [p.get("_cls") for p in created["parts"]] == ["Spring", "Part", "Gear"]
    ok(patch(client, f"/api/legacy/{pk}", {"title": "other"}))
    ok(patch(client, f"/api/legacy/{pk}", {"part": {"teeth": 13}}))
    stored = raw("legacy", pk)
    assert stored["part"] == {"_cls": "Gear", "name": "g", "teeth": 13}
    assert [p["_cls"] for p in stored["parts"]] == ["Spring", "Part", "Gear"] and stored["parts"][0]["stiffness"] == 1.5
    item = ok(client.get(f"/api/legacy/{pk}"))
    ok(client.put(f"/api/legacy/{pk}", json=item))
    assert raw("legacy", pk) == stored | {"title": "other"}


def test_a_patch_keeps_the_class_of_embedded_documents_saved_by_mongoengine(client: FlaskClient) -> None:
    doc = Legacy(title="t", part=Gear(name="g", teeth=2), parts=[Spring(stiffness=0.5), Gear(teeth=1)]).save()
    before = raw("legacy", doc.pk)
    assert ok(client.get(f"/api/legacy/{doc.pk}"))["part"]["_cls"] == "Gear"
    ok(patch(client, f"/api/legacy/{doc.pk}", {"title": "u"}))
    assert raw("legacy", doc.pk) == before | {"title": "u"}
    body = ok(patch(client, f"/api/legacy/{doc.pk}", {"part": {"teeth": 3}}))
    assert body["part"] == {"_cls": "Gear", "name": "g", "size": None, "teeth": 3}
    assert raw("legacy", doc.pk)["part"] == {"_cls": "Gear", "name": "g", "teeth": 3}
    Legacy.objects.get(pk=doc.pk)  # MongoEngine loads it back with its classes


@pytest.mark.parametrize(
    "value",
    [
        {"part": {"_cls": "Legacy", "name": "x"}},
        {"part": {"_cls": "Nope"}},
        {"part": {"_cls": "Spring", "teeth": 3}},
        {"parts": [{"_cls": "Target"}]},
    ],
)
def test_an_embedded_cls_naming_no_subclass_is_a_422(client: FlaskClient, value: dict[str, Any]) -> None:
    problem(client.post("/api/legacy", json={"title": "t", **value}), 422, next(iter(value)))
    assert restengine.db.get_database()["legacy"].count_documents({}) == 0


# ---------------------------------------------------------------- subclasses served on their own


def test_a_subclass_created_through_its_parent_keeps_its_own_resource_rules(client: FlaskClient) -> None:
    truck = {"_cls": "Vehicle.Truck", "name": "t", "load": 3}
    problem(client.post("/api/vehicles", json={**truck, "approved": True}), 422, "approved")
    problem(client.post("/api/vehicles", json={**truck, "secret": "x"}), 422, "secret")
    assert restengine.db.get_database()["vehicles"].count_documents({}) == 0
    created = ok(client.post("/api/vehicles", json=truck), 201)
    assert "secret" not in created and created["approved"] is False
    pk = created["id"]
    problem(patch(client, f"/api/vehicles/{pk}", {"approved": True}), 422, "approved")
    problem(patch(client, f"/api/vehicles/{pk}", {"secret": "x"}), 422, "secret")
    problem(client.put(f"/api/vehicles/{pk}", json={**created, "approved": True}), 422, "approved")
    assert ok(patch(client, f"/api/vehicles/{pk}", {"load": 4}))["load"] == 4
    restengine.db.get_database()["vehicles"].update_one({"_id": ObjectId(pk)}, {"$set": {"secret": "s"}})
    assert "secret" not in ok(client.get(f"/api/vehicles/{pk}")) and "secret" not in ok(client.get("/api/truck/" + pk))
    assert all("secret" not in item for item in ok(client.get("/api/vehicles"))["items"])
    operations = [
        {"op": "insert", "document": {**truck, "approved": True}},
        {"op": "update", "id": pk, "patch": {"secret": "y"}},
        {"op": "replace", "id": pk, "document": {**created, "approved": True}},
    ]
    refused = problem(client.post("/api/vehicles/_bulk", json={"ordered": True, "operations": operations}), 422)
    errors = refused["errors"]
    assert "approved" in errors["0"] and "secret" in errors["1"] and "approved" in errors["2"], errors
    car = ok(client.post("/api/vehicles", json={"_cls": "Vehicle.Car", "name": "c", "seats": 4}), 201)
    assert car["seats"] == 4  # a subclass without stricter rules of its own: the parent's


# ---------------------------------------------------------------- GridFS


def test_deleting_a_document_deletes_its_gridfs_file(client: FlaskClient) -> None:
    scan = Scan(name="s")
    scan.image.put(b"\x89PNG...", content_type="image/png")
    scan.save()
    files = gridfs.GridFS(restengine.db.get_database())
    assert files.exists(scan.image.grid_id) and ok(client.get(f"/api/scans/{scan.pk}"))["image"] == str(
        scan.image.grid_id
    )
    assert client.delete(f"/api/scans/{scan.pk}").status_code == 204
    assert restengine.db.get_database()["fs.files"].count_documents({}) == 0
    assert restengine.db.get_database()["fs.chunks"].count_documents({}) == 0


def test_a_bulk_delete_deletes_the_gridfs_file_too(client: FlaskClient) -> None:
    scan = Scan(name="s")
    scan.image.put(b"\x89PNG...", content_type="image/png")
    scan.save()
    operations = [{"op": "delete", "id": str(scan.pk)}]
    assert ok(client.post("/api/scans/_bulk", json={"operations": operations}))["results"][0]["status"] == 204
    assert restengine.db.get_database()["fs.files"].count_documents({}) == 0
    assert restengine.db.get_database()["fs.chunks"].count_documents({}) == 0


def test_a_document_holding_undeclared_or_unreadable_values_can_be_deleted(client: FlaskClient) -> None:
    pk = store("legacy", title="t", zzz="undeclared", part=[1], count="x")
    assert client.delete(f"/api/legacy/{pk}").status_code == 204
    assert restengine.db.get_database()["legacy"].count_documents({}) == 0


def test_the_openapi_document_describes_unreadable_and_subclass_rules(client: FlaskClient) -> None:
    schemas = ok(client.get("/openapi.json"))["components"]["schemas"]
    truck = schemas["Vehicle.Truck"]["properties"]
    assert "secret" not in truck and truck["_unreadable"]["readOnly"] is True
    assert truck["_unreadable"]["items"] == {"type": "string"} and "_unreadable" not in schemas["Vehicle.Truck"].get(
        "required", []
    )
    created = [v for v in schemas["VehicleCreate"]["oneOf"] if v["properties"]["_cls"].get("const") == "Vehicle.Truck"]
    assert len(created) == 1 and not {"approved", "secret"} & set(created[0]["properties"])
    assert "_unreadable" not in schemas["VehicleCreate"]["oneOf"][0]["properties"]
    part_input = schemas["PartInput"]["anyOf"]
    assert [v["properties"]["_cls"]["const"] for v in part_input] == ["Part", "Gear", "Spring"]
    assert "teeth" in part_input[1]["properties"] and part_input[1]["required"] == ["_cls"]


def test_bulk_updates_and_deletes_documents_holding_unreadable_values(client: FlaskClient) -> None:
    pk = store("legacy", title="t", zzz="undeclared", count="x")
    update = {"op": "update", "id": str(pk), "patch": {"title": "u"}}
    results = ok(client.post("/api/legacy/_bulk", json={"ordered": True, "operations": [update]}))["results"]
    assert results[0]["status"] == 200 and raw("legacy", pk)["count"] == "x" and raw("legacy", pk)["title"] == "u"
    delete = {"op": "delete", "id": str(pk)}
    results = ok(client.post("/api/legacy/_bulk", json={"ordered": True, "operations": [delete]}))["results"]
    assert results[0]["status"] == 204 and restengine.db.get_database()["legacy"].count_documents({}) == 0
