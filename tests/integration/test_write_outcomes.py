"""Issue 12: what ``_bulk`` reports, what a conditional DELETE leaves, what a delete or a rolled-back
array POST invalidates (real database server; real Redis for the cache)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymongo.collection
import pytest
from flask import Flask
from flask.testing import FlaskClient
from mongoengine import signals

import restengine
from restengine.api import bulk as bulk_module
from restengine.api import writes
from restengine.api.outcome import Phases
from restengine.documents import load_documents
from restengine.errors import Conflict
from restengine.ops.indexes import create_indexes
from tests.cascade_models import Box, Folder, Item, Shelf, Sticker, Tag
from tests.integration.api_helpers import customer, legacy_app, legacy_registry, ok, raw, shop
from tests.legacy_models import Customer

NIA = {"code": "NEW001", "name": "Nia", "email": "nia@example.com"}


def bulk(*operations: dict[str, Any], ordered: bool = True) -> dict[str, Any]:
    return {"ordered": ordered, "operations": list(operations)}


def statuses(response: Any) -> list[Any]:
    return [r["status"] for r in response.get_json()["results"]]


# ---------------------------------------------------------------- _bulk: matched counts


@pytest.mark.parametrize("ordered", [True, False])
def test_bulk_operations_on_an_id_the_batch_deleted_are_404(client: FlaskClient, ordered: bool) -> None:
    customer("ABC123", "Ada", email="ada@example.com")
    response = client.post(
        "/api/customers/_bulk",
        json=bulk(
            {"op": "delete", "id": "ABC123"},
            {"op": "update", "id": "ABC123", "patch": {"name": "Ghost"}},
            {"op": "replace", "id": "ABC123", "document": {"name": "Ghost", "email": "g@example.com"}},
            ordered=ordered,
        ),
    )
    assert response.status_code == 409, response.get_data(as_text=True)
    assert statuses(response) == [204, 404, 404]
    assert Customer.objects(code="ABC123").count() == 0, "nothing brought it back"


def test_bulk_an_insert_after_a_delete_brings_the_id_back(client: FlaskClient) -> None:
    customer("NEW001", "Old", email="old@example.com")
    response = client.post(
        "/api/customers/_bulk",
        json=bulk(
            {"op": "delete", "id": "NEW001"},
            {"op": "insert", "document": NIA},
            {"op": "update", "id": "NEW001", "patch": {"name": "Nia B"}},
        ),
    )
    assert [r["status"] for r in ok(response)["results"]] == [204, 201, 200]
    assert raw("customers", "NEW001")["name"] == "Nia B"


def test_bulk_an_item_deleted_meanwhile_is_404(client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    customer("ABC123", "Ada", email="ada@example.com")
    customer("DEF456", "Dee", email="dee@example.com")
    assign_ids = bulk_module.assign_ids

    def deleted_meanwhile(docs: Any) -> None:  # after the plan read the documents, before bulk_write
        Customer.objects(code="ABC123").delete()
        assign_ids(docs)

    monkeypatch.setattr(bulk_module, "assign_ids", deleted_meanwhile)
    response = client.post(
        "/api/customers/_bulk",
        json=bulk({"op": "update", "id": "ABC123", "patch": {"name": "Ghost"}}, {"op": "delete", "id": "DEF456"}),
    )
    assert response.status_code == 409 and statuses(response) == [404, 204]
    assert Customer.objects(code="ABC123").count() == 0, "the update created nothing"


# ---------------------------------------------------------------- DELETE with If-Match and delete rules


def test_a_stale_if_match_delete_leaves_the_dependents_untouched(app: Flask, client: FlaskClient) -> None:
    shelf = Shelf(name="top").save()
    box = Box(label="b", shelf=shelf).save()

    def changed_meanwhile(doc: Any) -> None:  # after the view compared the ETag, before the delete
        Shelf.objects(id=doc.pk).update(set__name="moved")

    api = app.extensions["restengine.api"]
    api.register(Shelf, before_delete=changed_meanwhile)
    api.register(Box)
    etag = client.get(f"/api/cascade_shelves/{shelf.pk}").headers["ETag"]
    response = client.delete(f"/api/cascade_shelves/{shelf.pk}", headers={"If-Match": etag})
    assert response.status_code == 412, response.get_data(as_text=True)
    assert Shelf.objects(id=shelf.pk).count() == 1
    assert Box.objects(id=box.pk).count() == 1, "the CASCADE did not run"


def test_a_change_while_the_rules_run_never_leaves_a_412_with_its_dependents_deleted(
    app: Flask, client: FlaskClient
) -> None:
    shelf = Shelf(name="top").save()
    box = Box(label="b", shelf=shelf).save()

    def shelf_changed(sender: Any, document: Any, **_: Any) -> None:  # another client, while a rule deletes the Box
        Shelf.objects(id=shelf.pk).update(set__name="moved")

    api = app.extensions["restengine.api"]
    api.register(Shelf)
    etag = client.get(f"/api/cascade_shelves/{shelf.pk}").headers["ETag"]
    signals.pre_delete.connect(shelf_changed, sender=Box)
    try:
        response = client.delete(f"/api/cascade_shelves/{shelf.pk}", headers={"If-Match": etag})
    finally:
        signals.pre_delete.disconnect(shelf_changed, sender=Box)
    if response.status_code == 412:
        assert Box.objects(id=box.pk).count() == 1, "412, yet the CASCADE deleted the Box"
    else:  # the delete claimed the Shelf first: the change came after it, and matched nothing
        assert response.status_code == 204, response.get_data(as_text=True)
        assert (Shelf.objects.count(), Box.objects.count()) == (0, 0)


def test_a_deny_down_the_cascade_is_409_before_anything_is_written(app: Flask, client: FlaskClient) -> None:
    shelf = Shelf(name="top").save()
    box = Box(label="b", shelf=shelf).save()
    Sticker(box=box).save()
    app.extensions["restengine.api"].register(Shelf)
    etag = client.get(f"/api/cascade_shelves/{shelf.pk}").headers["ETag"]
    for headers in ({"If-Match": etag}, {}):
        response = client.delete(f"/api/cascade_shelves/{shelf.pk}", headers=headers)
        assert response.status_code == 409, response.get_data(as_text=True)
        assert "Box" not in response.get_data(as_text=True) and "Sticker" not in response.get_data(as_text=True)
    assert (Shelf.objects.count(), Box.objects.count(), Sticker.objects.count()) == (1, 1, 1)


def test_a_delete_applies_its_rules_all_the_way(app: Flask, client: FlaskClient) -> None:
    shelf = Shelf(name="top").save()
    box = Box(label="b", shelf=shelf).save()
    item = Item(name="i", box=box).save()
    tag = Tag(name="t", item=item).save()
    other = Box(label="other").save()
    app.extensions["restengine.api"].register(Shelf)
    etag = client.get(f"/api/cascade_shelves/{shelf.pk}").headers["ETag"]
    assert client.delete(f"/api/cascade_shelves/{shelf.pk}", headers={"If-Match": etag}).status_code == 204
    assert (Shelf.objects.count(), Box.objects.count(), Item.objects.count()) == (0, 1, 0)
    assert Box.objects.get().pk == other.pk
    assert "item" not in Tag._get_collection().find_one({"_id": tag.pk}), "NULLIFY ran down the cascade"


# ---------------------------------------------------------------- cache invalidation (real Redis)


@pytest.fixture
def cached_app(mongodb_uri: str, redis_url: str) -> Iterator[Flask]:
    with legacy_registry():
        app = legacy_app(mongodb_uri, redis_url)
        create_indexes(load_documents(["tests.legacy_models"]))
        for cls in (Shelf, Box, Item, Tag):
            app.extensions["restengine.api"].register(cls)
        try:
            yield app
        finally:
            restengine.db.close_all()


def test_a_cascade_invalidates_every_collection_it_reaches(cached_app: Flask) -> None:
    client = cached_app.test_client()
    shelf = Shelf(name="top").save()
    item = Item(name="i", box=Box(label="b", shelf=shelf).save()).save()
    tag = Tag(name="t", item=item).save()
    for url in (f"/api/cascade_items/{item.pk}", "/api/cascade_items", f"/api/cascade_tags/{tag.pk}"):
        assert client.get(url).headers["X-Cache"] == "miss"
        assert client.get(url).headers["X-Cache"] == "hit"
    assert client.delete(f"/api/cascade_shelves/{shelf.pk}").status_code == 204
    assert client.get(f"/api/cascade_items/{item.pk}").status_code == 404
    assert client.get("/api/cascade_items").get_json()["items"] == []
    assert client.get(f"/api/cascade_tags/{tag.pk}").get_json().get("item") is None


def test_create_many_reports_an_undone_partial_insert(cached_app: Flask) -> None:
    shop()  # ABC123, abc123@example.com
    resource = cached_app.extensions["restengine.api"].resources["customers"]
    calls: list[int] = []
    duplicate = {"code": "NEW002", "name": "Twin", "email": "abc123@example.com"}

    def create_many(bodies: list[Any], undone: Any) -> None:
        phases = Phases(5.0, 5.0, lambda: None)
        docs = writes.prepare_many(resource, bodies, phases, max_items=10)
        writes.insert_many(resource, docs, phases, undone=undone)

    with cached_app.app_context(), pytest.raises(Conflict):
        create_many([NIA, duplicate], lambda: calls.append(Customer.objects.count()))
    assert calls == [1], "called once, after the partial insert was removed"
    assert Customer.objects(code="NEW001").count() == 0
    with cached_app.app_context():
        create_many([{**NIA, "code": "NEW003"}], lambda: calls.append(-1))
    assert calls == [1], "not called when nothing was undone"


def test_a_rolled_back_array_post_invalidates(cached_app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    shop()
    client = cached_app.test_client()
    delete_many = pymongo.collection.Collection.delete_many
    seen: list[Any] = []

    def read_in_the_window(self: Any, *args: Any, **kwargs: Any) -> Any:  # a read between insert and undo
        seen.append(client.get("/api/customers").get_json())
        return delete_many(self, *args, **kwargs)

    monkeypatch.setattr(pymongo.collection.Collection, "delete_many", read_in_the_window)
    duplicate = {"code": "NEW002", "name": "Twin", "email": "abc123@example.com"}
    assert client.post("/api/customers", json=[NIA, duplicate]).status_code == 409
    monkeypatch.undo()
    assert "NEW001" in [c["id"] for c in seen[0]["items"]], "the read in the window saw the partial insert"
    after = client.get("/api/customers")
    assert after.headers["X-Cache"] == "miss" and "NEW001" not in [c["id"] for c in after.get_json()["items"]]


def test_the_invalidation_walk_follows_cascades_and_ends_on_cycles() -> None:
    from restengine.api.caching import ruled_collections  # new with issue 12

    assert ruled_collections(Shelf) == {"cascade_boxes", "cascade_items", "cascade_tags"}, "a DENY writes nothing"
    assert ruled_collections(Item) == {"cascade_tags"}, "a NULLIFY writes the referring collection only"
    assert ruled_collections(Folder) == {"cascade_folders"}


def test_a_self_cascade_invalidates_its_own_collection(cached_app: Flask) -> None:
    client = cached_app.test_client()
    cached_app.extensions["restengine.api"].register(Folder)
    root = Folder(name="root").save()
    child = Folder(name="child", parent=root).save()
    assert client.get(f"/api/cascade_folders/{child.pk}").status_code == 200
    assert client.get(f"/api/cascade_folders/{child.pk}").headers["X-Cache"] == "hit"
    assert client.delete(f"/api/cascade_folders/{root.pk}").status_code == 204
    assert client.get(f"/api/cascade_folders/{child.pk}").status_code == 404
