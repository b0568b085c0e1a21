"""Free-form values (lists, dicts, dynamic fields of no element type): bounded depth, no operator keys (issue 12)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.integration.api_helpers import api_app, nested, ok, patch, problem, stored_count

MAX_DEPTH = 32  # the documented limit: restengine.api.fields.base.MAX_DEPTH


@pytest.fixture
def free(mongodb_uri: str) -> Iterator[FlaskClient]:
    with api_app(mongodb_uri, "tests.free_form_models") as app:
        yield app.test_client()


def nested_objects(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("anything", nested(300)),
        ("anything", nested(MAX_DEPTH + 1)),
        ("settings", nested_objects(MAX_DEPTH + 1)),
        ("extra", nested(MAX_DEPTH + 1)),
        ("settings", {"a": nested(MAX_DEPTH)}),
    ],
)
def test_a_value_nested_too_deeply_is_a_422_and_writes_nothing(free: FlaskClient, field: str, value: Any) -> None:
    body = problem(free.post("/api/profiles", json={"name": "p", field: value}), 422, field)
    assert "nested too deeply" in str(body["errors"][field])
    assert stored_count("profiles") == 0
    assert ok(free.get("/api/profiles?limit=100"))["items"] == []


def test_the_deepest_accepted_value_is_stored_and_read_back(free: FlaskClient) -> None:
    from restengine.api.fields import base

    assert base.MAX_DEPTH == MAX_DEPTH
    deepest = {"anything": nested(MAX_DEPTH), "settings": nested_objects(MAX_DEPTH), "extra": nested(MAX_DEPTH)}
    created = ok(free.post("/api/profiles", json={"name": "p", **deepest}), 201)
    assert {k: created[k] for k in deepest} == deepest
    listed = ok(free.get("/api/profiles?limit=100"))["items"]
    assert [{k: item[k] for k in deepest} for item in listed] == [deepest]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("anything", [{"$where": "1"}]),
        ("anything", [[{"ok": {"$gt": 1}}]]),
        ("anything", [{"a.b": 1}]),
        ("settings", {"$set": {"x": 1}}),
        ("settings", {"nested": {"a.b": 1}}),
        ("settings", {"nul\u0000key": 1}),
        ("extra", {"$where": "1"}),
        ("extra", [{"x": {"$ne": None}}]),
        ("counts", {"$inc": 1}),
        ("counts", {"a.b": 1}),
    ],
)
def test_operator_and_dotted_keys_are_a_422_and_write_nothing(free: FlaskClient, field: str, value: Any) -> None:
    problem(free.post("/api/profiles", json={"name": "p", field: value}), 422, field)
    assert stored_count("profiles") == 0


def test_patch_refuses_operator_keys_and_depth(free: FlaskClient) -> None:
    created = ok(free.post("/api/profiles", json={"name": "p", "settings": {"plain": [1, {"k": "v"}]}}), 201)
    path = f"/api/profiles/{created['id']}"
    problem(patch(free, path, {"settings": {"deep": {"$where": "1"}}}), 422, "settings")
    problem(patch(free, path, {"anything": nested(300)}), 422, "anything")
    assert ok(free.get(path)) == created


@pytest.mark.parametrize("value", [{"a": 1}, ["1"], True, 1.5, None])
def test_an_integer_key_is_an_integer_or_its_text(free: FlaskClient, value: Any) -> None:
    ok(free.post("/api/counters", json={"id": 7, "label": "int"}), 201)
    ok(free.post("/api/counters", json={"id": "8", "label": "text"}), 201)
    problem(free.post("/api/counters", json={"id": value, "label": "bad"}), 422, "id")
    assert stored_count("counters") == 2


def test_bulk_ids_of_an_integer_key(free: FlaskClient) -> None:
    ok(free.post("/api/counters", json={"id": 7, "label": "a"}), 201)
    ok(free.post("/api/counters/_bulk", json={"operations": [{"op": "update", "id": 7, "patch": {"label": "b"}}]}))
    assert ok(free.get("/api/counters/7"))["label"] == "b"
    bad = {"operations": [{"op": "update", "id": True, "patch": {"label": "c"}}]}
    body = problem(free.post("/api/counters/_bulk", json=bad), 422)
    assert body["errors"] == {"0": {"id": "not a valid id for this resource"}}
    assert ok(free.get("/api/counters/7"))["label"] == "b"


@pytest.mark.parametrize("value", [{"a": 1}, ["x"], 5, True, 1.5])
def test_a_string_key_is_only_a_string(free: FlaskClient, value: Any) -> None:
    problem(free.post("/api/tags", json={"id": value, "label": "bad"}), 422, "id")
    assert stored_count("tags") == 0
    assert ok(free.post("/api/tags", json={"id": "5", "label": "ok"}), 201)["id"] == "5"


@pytest.mark.parametrize("value", [{"a": 1}, ["x"], 5, True])
def test_bulk_ids_of_a_string_key_are_strings(free: FlaskClient, value: Any) -> None:
    ok(free.post("/api/tags", json={"id": "5", "label": "a"}), 201)
    operations = [{"op": "update", "id": value, "patch": {"label": "b"}}, {"op": "delete", "id": value}]
    body = problem(free.post("/api/tags/_bulk", json={"operations": operations}), 422)
    assert body["errors"] == {str(i): {"id": "not a valid id for this resource"} for i in range(2)}
    assert ok(free.get("/api/tags/5"))["label"] == "a"
