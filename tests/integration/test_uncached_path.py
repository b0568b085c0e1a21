"""Issue 14: the uncached read path sends the simplest query and builds no QuerySet per request, while a custom
``objects`` manager is still asked on every request (real database server)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymongo.collection
import pytest
from flask import Flask
from mongoengine.queryset.manager import QuerySetManager

import restengine
from restengine import create_app
from tests import manager_models
from tests.integration.api_helpers import ok
from tests.keys import TEST_SECRET


@pytest.fixture
def app(mongodb_uri: str) -> Iterator[Flask]:
    app = create_app(
        {
            "MONGODB_URI": mongodb_uri,
            "RESTENGINE_DOCUMENTS": "tests.manager_models",
            "RESTENGINE_SECRET_KEY": TEST_SECRET,
            "RESTENGINE_CACHE_TTL": 0,  # every GET reaches the database
        }
    )
    with app.app_context():
        yield app
    restengine.db.close_all()


def test_an_item_get_is_one_plain_find_one_and_no_queryset(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    client = app.test_client()
    created = ok(client.post("/api/plain_notes", json={"text": "t"}), 201)
    ok(client.get(f"/api/plain_notes/{created['id']}"))
    managers: list[Any] = []
    sent: list[tuple[Any, Any]] = []
    manager_get, find_one = QuerySetManager.__get__, pymongo.collection.Collection.find_one

    def counted_manager(self: Any, instance: Any, owner: Any) -> Any:
        managers.append(owner)
        return manager_get(self, instance, owner)

    def recorded_find_one(self: Any, query: Any = None, projection: Any = None, *args: Any, **kwargs: Any) -> Any:
        sent.append((query, projection))
        return find_one(self, query, projection, *args, **kwargs)

    monkeypatch.setattr(QuerySetManager, "__get__", counted_manager)
    monkeypatch.setattr(pymongo.collection.Collection, "find_one", recorded_find_one)
    for _ in range(3):
        assert ok(client.get(f"/api/plain_notes/{created['id']}"))["text"] == "t"
    assert managers == [], "MongoEngine's plain manager is read once, not per request"
    pk = restengine.api.codec.pk_value(manager_models.Plain, created["id"])
    assert sent == [({"_id": pk}, None)] * 3, "the query a hand-written view sends: no $and, no projection"
    partial = client.get(f"/api/plain_notes/{created['id']}?fields=id")
    assert ok(partial) == {"id": created["id"]} and sent[-1][1] == {"_id": 1}, "fewer fields: a real projection"


def test_a_custom_manager_is_asked_on_every_request(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    collection = restengine.db.get_database()["tenant_notes"]
    collection.insert_many([{"tenant": "a", "text": "for a"}, {"tenant": "b", "text": "for b"}])
    client = app.test_client()
    assert [i["text"] for i in ok(client.get("/api/tenant_notes"))["items"]] == ["for a"]
    monkeypatch.setitem(manager_models.TENANT, "name", "b")
    assert [i["text"] for i in ok(client.get("/api/tenant_notes"))["items"]] == ["for b"]
