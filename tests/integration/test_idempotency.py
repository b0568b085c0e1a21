"""Issue 12: Idempotency-Key on POST and POST _bulk; what a write's status says about what was written
(real database server; real Redis for the cache)."""

from __future__ import annotations

import contextlib
import datetime
import time
from collections.abc import Iterator
from typing import Any

import pymongo.collection
import pytest
from flask import Flask
from flask.testing import FlaskClient
from pymongo.errors import ServerSelectionTimeoutError

import restengine
from restengine import create_app
from restengine.api import idempotency
from restengine.api.idempotency import COLLECTION, parse_key
from restengine.errors import IdempotencyProblem
from tests.idempotency_models import Ticket
from tests.integration.api_helpers import ok, problem
from tests.keys import TEST_SECRET

KEY = {"Idempotency-Key": '"3f1c9a52-8d0e-4f61-9b7a-2c5d8e1f4a60"'}


def make(mongodb_uri: str, **config: Any) -> Flask:
    return create_app(
        {
            "MONGODB_URI": mongodb_uri,
            "RESTENGINE_DOCUMENTS": "tests.idempotency_models",
            "RESTENGINE_SECRET_KEY": TEST_SECRET,
            "RESTENGINE_MAX_BATCH": 5,
            **config,
        }
    )


@pytest.fixture
def app(mongodb_uri: str) -> Iterator[Flask]:
    app = make(mongodb_uri)
    with app.app_context():
        yield app
    restengine.db.close_all()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def tickets() -> list[dict[str, Any]]:
    return list(restengine.db.get_database()["tickets"].find())


def records() -> list[dict[str, Any]]:
    return list(restengine.db.get_database()[COLLECTION].find())


# ---------------------------------------------------------------- the key itself


@pytest.mark.parametrize(
    ("header", "key"),
    [('"abc"', "abc"), ("abc-123_X", "abc-123_X"), ('"a \\"quoted\\" key"', 'a "quoted" key'), (None, None)],
)
def test_keys_are_structured_field_strings_or_bare_tokens(header: str | None, key: str | None) -> None:
    assert parse_key(header) == key


@pytest.mark.parametrize("header", ['""', "", "a b", '"abc', '"a\\b"', "x" * 256, '"é"', "a\x00"])
def test_a_malformed_key_is_refused(header: str) -> None:
    with pytest.raises(IdempotencyProblem) as caught:
        parse_key(header)
    assert caught.value.status == 400


def test_a_malformed_key_is_a_400_and_writes_nothing(client: FlaskClient) -> None:
    body = problem(client.post("/api/tickets", json={"name": "a"}, headers={"Idempotency-Key": "a b"}), 400)
    assert body["type"] == "urn:restengine:problem:idempotency"
    assert tickets() == []


# ---------------------------------------------------------------- replays


def test_a_retried_post_replays_the_first_response_and_writes_nothing(client: FlaskClient) -> None:
    first = client.post("/api/tickets", json={"name": "concert", "seats": 2}, headers=KEY)
    assert first.status_code == 201, first.get_data(as_text=True)
    again = client.post("/api/tickets", json={"seats": 2, "name": "concert"}, headers=KEY)  # key order aside
    assert again.status_code == 201
    assert again.headers["Location"] == first.headers["Location"]
    assert again.get_json() == first.get_json() and again.headers["ETag"] == first.headers["ETag"]
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert len(tickets()) == 1
    assert client.post("/api/tickets", json={"name": "concert", "seats": 2}).status_code == 201, "no key: a new one"
    assert len(tickets()) == 2


def test_an_array_post_is_replayed_with_the_same_ids(client: FlaskClient) -> None:
    body = [{"name": "a"}, {"name": "b"}]
    first = ok(client.post("/api/tickets", json=body, headers=KEY), 201)
    again = client.post("/api/tickets", json=body, headers=KEY)
    assert again.status_code == 201 and again.get_json() == first
    assert sorted(t["name"] for t in tickets()) == ["a", "b"]


def test_the_same_key_with_another_body_is_a_422(client: FlaskClient) -> None:
    ok(client.post("/api/tickets", json={"name": "one"}, headers=KEY), 201)
    body = problem(client.post("/api/tickets", json={"name": "two"}, headers=KEY), 422)
    assert body["type"] == "urn:restengine:problem:idempotency"
    assert [t["name"] for t in tickets()] == ["one"]
    problem(client.post("/api/tickets/_bulk", json={"name": "one"}, headers=KEY), 422)  # another path too


def test_a_client_error_is_a_final_answer_and_is_replayed(client: FlaskClient) -> None:
    problem(client.post("/api/tickets", json={"seats": 1}, headers=KEY), 422)  # name is required
    again = client.post("/api/tickets", json={"seats": 1}, headers=KEY)
    assert again.status_code == 422 and again.headers["Idempotent-Replayed"] == "true"
    assert tickets() == []


def test_keys_belong_to_their_caller(mongodb_uri: str) -> None:
    from restengine.auth.keys import KeyStore

    app = make(mongodb_uri, RESTENGINE_AUTH="on")
    with app.app_context():
        store = KeyStore(lambda: restengine.db.get_database()["restengine_api_keys"])
        _, one = store.create("admin", name="one")
        _, two = store.create("admin", name="two")
        client = app.test_client()
        body = {"name": "mine"}
        first = ok(client.post("/api/tickets", json=body, headers={**KEY, "Authorization": f"Bearer {one}"}), 201)
        other = ok(client.post("/api/tickets", json=body, headers={**KEY, "Authorization": f"Bearer {two}"}), 201)
        assert other["id"] != first["id"], "another caller's key is not this caller's"
        assert len(tickets()) == 2
    restengine.db.close_all()


def test_a_bulk_request_is_replayed_and_applied_once(client: FlaskClient) -> None:
    stored = ok(client.post("/api/tickets", json={"name": "t", "seats": 1}), 201)
    body = {
        "operations": [
            {"op": "insert", "document": {"name": "new"}},
            {"op": "update", "id": stored["id"], "patch": {"seats": 5}},
        ]
    }
    first = client.post("/api/tickets/_bulk", json=body, headers=KEY)
    assert first.status_code == 200, first.get_data(as_text=True)
    again = client.post("/api/tickets/_bulk", json=body, headers=KEY)
    assert again.status_code == 200 and again.get_json() == first.get_json()
    assert len(tickets()) == 2


def test_a_request_in_progress_under_the_key_is_a_409(client: FlaskClient, app: Flask) -> None:
    answers: list[Any] = []
    original = Ticket.clean

    def retried_meanwhile(self: Ticket) -> None:  # the client retries while the first request runs
        if not answers:
            answers.append(app.test_client().post("/api/tickets", json={"name": "held"}, headers=KEY))

    Ticket.clean = retried_meanwhile  # type: ignore[method-assign]
    try:
        first = client.post("/api/tickets", json={"name": "held"}, headers=KEY)
    finally:
        Ticket.clean = original  # type: ignore[method-assign]
    assert first.status_code == 201
    body = problem(answers[0], 409)
    assert body["type"] == "urn:restengine:problem:idempotency" and int(answers[0].headers["Retry-After"]) >= 1
    assert len(tickets()) == 1
    again = client.post("/api/tickets", json={"name": "held"}, headers=KEY)
    assert again.status_code == 201 and again.get_json() == first.get_json()


# ---------------------------------------------------------------- an abandoned first attempt


def later(monkeypatch: pytest.MonkeyPatch, hours: float = 1) -> None:
    """Every lease has run out (the first attempt's instance died): the clock moves on."""
    now = idempotency._now() + datetime.timedelta(hours=hours)
    monkeypatch.setattr(idempotency, "_now", lambda: now)


def test_a_write_whose_instance_died_before_answering_is_found_not_redone(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = idempotency.IdempotencyStore
    with monkeypatch.context() as dead:  # the instance dies after the write, before keeping the answer
        dead.setattr(store, "finish", lambda *args: None)
        first = ok(client.post("/api/tickets", json={"name": "once"}, headers=KEY), 201)
    retry = client.post("/api/tickets", json={"name": "once"}, headers=KEY)
    problem(retry, 409)  # its lease is alive: it may still be answering
    later(monkeypatch)
    retry = client.post("/api/tickets", json={"name": "once"}, headers=KEY)
    assert retry.status_code == 201 and retry.get_json()["id"] == first["id"]
    assert retry.headers["Location"].endswith(f"/api/tickets/{first['id']}")
    assert len(tickets()) == 1
    assert records()[0]["state"] == "done"


def test_a_write_whose_instance_died_before_sending_is_run_again(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as dead:
        dead.setattr(pymongo.collection.Collection, "insert_one", _dies)
        with pytest.raises(SystemExit):
            client.post("/api/tickets", json={"name": "never"}, headers=KEY)
    assert tickets() == [] and records()[0]["state"] == "started"
    later(monkeypatch)
    retry = ok(client.post("/api/tickets", json={"name": "never"}, headers=KEY), 201)
    assert [t["_id"] for t in tickets()] == [restengine.api.codec.pk_value(Ticket, retry["id"])]


def _dies(*args: Any, **kwargs: Any) -> Any:
    if args[0].name == "tickets":
        raise SystemExit("the instance is killed")
    return _insert_one(*args, **kwargs)


_insert_one = pymongo.collection.Collection.insert_one


def test_a_partial_array_insert_left_by_a_dead_instance_is_undone_and_redone(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    insert_many = pymongo.collection.Collection.insert_many

    def half_then_die(self: Any, documents: list[Any], **kwargs: Any) -> Any:
        insert_many(self, documents[:1], **kwargs)
        raise SystemExit("killed mid-insert")

    body = [{"name": "a"}, {"name": "b"}]
    with monkeypatch.context() as dead:
        dead.setattr(pymongo.collection.Collection, "insert_many", half_then_die)
        with pytest.raises(SystemExit):
            client.post("/api/tickets", json=body, headers=KEY)
    assert [t["name"] for t in tickets()] == ["a"]
    later(monkeypatch)
    retry = ok(client.post("/api/tickets", json=body, headers=KEY), 201)
    assert sorted(t["name"] for t in tickets()) == ["a", "b"]
    assert sorted(str(t["_id"]) for t in tickets()) == sorted(i["id"] for i in retry["items"])


def test_a_bulk_whose_instance_died_after_sending_is_found_applied(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = ok(client.post("/api/tickets", json={"name": "t", "seats": 1}), 201)
    body = {
        "operations": [
            {"op": "update", "id": stored["id"], "patch": {"seats": 7}},
            {"op": "insert", "document": {"name": "n"}},
        ]
    }
    with monkeypatch.context() as dead:
        dead.setattr(idempotency.IdempotencyStore, "finish", lambda *args: None)
        first = ok(client.post("/api/tickets/_bulk", json=body, headers=KEY))
    later(monkeypatch)
    retry = ok(client.post("/api/tickets/_bulk", json=body, headers=KEY))
    assert retry == first
    assert len(tickets()) == 2 and {t["seats"] for t in tickets()} == {7, 1}


# ---------------------------------------------------------------- what a status says about the write


@contextlib.contextmanager
def slow_insert(mongodb_uri: str, skip: int = 0) -> Iterator[None]:
    """The database server holds an insert (after ``skip`` others) for 600 ms, then runs it (a failpoint)."""
    with pymongo.MongoClient(mongodb_uri) as admin:
        admin.admin.command(
            {
                "configureFailPoint": "failCommand",
                "mode": {"skip": skip, "times": 1},
                "data": {"failCommands": ["insert"], "blockConnection": True, "blockTimeMS": 600},
            }
        )
        try:
            yield
        finally:
            admin.admin.command({"configureFailPoint": "failCommand", "mode": "off"})


def test_a_write_slower_than_the_request_deadline_is_done_and_reported(mongodb_uri: str) -> None:
    app = make(mongodb_uri, RESTENGINE_DB_TIMEOUT_MS=200, RESTENGINE_WRITE_TIMEOUT_MS=5000)
    with app.app_context(), slow_insert(mongodb_uri):
        response = app.test_client().post("/api/tickets", json=[{"name": "a"}, {"name": "b"}])
        assert response.status_code == 201, response.get_data(as_text=True)
        assert len(tickets()) == 2
    restengine.db.close_all()


def test_a_write_whose_answer_does_not_come_is_a_504_and_invalidates(mongodb_uri: str, redis_url: str) -> None:
    app = make(mongodb_uri, REDIS_URL=redis_url, RESTENGINE_WRITE_TIMEOUT_MS=200)
    client = app.test_client()
    with app.app_context():
        assert client.get("/api/tickets?count=exact").get_json()["count"] == 0
        assert client.get("/api/tickets?count=exact").headers["X-Cache"] == "hit"
        with slow_insert(mongodb_uri):
            response = client.post("/api/tickets", json=[{"name": "a"}, {"name": "b"}])
        body = problem(response, 504)
        assert body["type"] == "urn:restengine:problem:outcome-unknown" and "Retry-After" not in response.headers
        time.sleep(0.6)  # the server runs the insert once its hold ends
        after = client.get("/api/tickets?count=exact")
        assert after.headers["X-Cache"] == "miss" and after.get_json()["count"] == 2, "it was written after all"
    restengine.db.close_all()


def test_a_lost_answer_with_a_key_is_found_by_the_retry(mongodb_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make(mongodb_uri, RESTENGINE_WRITE_TIMEOUT_MS=200)
    client = app.test_client()
    with app.app_context():
        with slow_insert(mongodb_uri, skip=1):  # the key's record first, then the document
            problem(client.post("/api/tickets", json={"name": "late"}, headers=KEY), 504)
        problem(client.post("/api/tickets", json={"name": "late"}, headers=KEY), 409)  # until the write is surely over
        time.sleep(0.6)
        later(monkeypatch)
        retry = ok(client.post("/api/tickets", json={"name": "late"}, headers=KEY), 201)
        assert [str(t["_id"]) for t in tickets()] == [retry["id"]]
    restengine.db.close_all()


def test_a_write_never_sent_is_a_503_and_releases_its_key(client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise ServerSelectionTimeoutError("no server")

    with monkeypatch.context() as down:
        down.setattr(pymongo.collection.Collection, "insert_one", _unless_records(unreachable))
        response = client.post("/api/tickets", json={"name": "x"}, headers=KEY)
    body = problem(response, 503)
    assert body["type"] == "urn:restengine:problem:unavailable" and response.headers["Retry-After"]
    assert tickets() == [] and records() == [], "nothing written, the key released"
    ok(client.post("/api/tickets", json={"name": "x"}, headers=KEY), 201)


def _unless_records(replacement: Any) -> Any:
    def insert_one(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.name == COLLECTION:
            return _insert_one(self, *args, **kwargs)
        return replacement(self, *args, **kwargs)

    return insert_one


@pytest.mark.parametrize("path", ["/api/tickets", "/api/tickets/_bulk"])
def test_too_many_items_is_a_413_and_writes_nothing(client: FlaskClient, path: str) -> None:
    six = [{"name": str(i)} for i in range(6)]
    body = six if path == "/api/tickets" else {"operations": [{"op": "insert", "document": d} for d in six]}
    answer = problem(client.post(path, json=body), 413)
    assert answer["type"] == "urn:restengine:problem:too-many-items" and answer["max_items"] == 5
    assert tickets() == []
    ok(client.post("/api/tickets", json=six[:5]), 201)


def nested(levels: int) -> str:
    """A JSON object nested ``levels`` deep (as text: the encoders stop far earlier)."""
    return '{"name": ' + '{"a": ' * (levels - 1) + '"deep"' + "}" * levels


@pytest.mark.parametrize("levels", [101, 990])
def test_a_body_nested_deeper_than_mongodb_stores_is_a_422(client: FlaskClient, levels: int) -> None:
    created = ok(client.post("/api/tickets", json={"name": "flat"}), 201)
    headers = {"Content-Type": "application/merge-patch+json"}
    answer = client.patch(f"/api/tickets/{created['id']}", data=nested(levels), headers=headers)
    assert "nested too deeply" in problem(answer, 422)["errors"]["name"]
    problem(client.post("/api/tickets", data=nested(levels), content_type="application/json"), 422)
    assert [t["name"] for t in tickets()] == ["flat"]


def test_a_document_the_database_refuses_is_a_422_naming_nothing_of_it() -> None:
    from mongoengine.errors import OperationError
    from pymongo.errors import WriteError

    from restengine.errors import to_problem

    refused = WriteError("Document exceeds maximum nesting depth of 100 in collection db.tickets", 15, {})
    try:
        try:
            raise refused
        except WriteError as exc:
            raise OperationError("Could not save document (db.tickets ...)") from exc
    except OperationError as wrapped:
        found = to_problem(wrapped)
    assert found is not None and found.status == 422
    assert "tickets" not in (found.detail or "") and "nesting" not in (found.detail or "")


def test_a_response_too_large_to_keep_is_rebuilt_from_what_was_written(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(idempotency, "MAX_STORED_BODY", 10)
    body = [{"name": "a"}, {"name": "b"}]
    first = ok(client.post("/api/tickets", json=body, headers=KEY), 201)
    assert records()[0]["response"]["body"] is None
    again = client.post("/api/tickets", json=body, headers=KEY)
    assert again.status_code == 201 and again.get_json() == first and again.headers["Idempotent-Replayed"] == "true"
    restengine.db.get_database()["tickets"].delete_one({"name": "a"})  # someone deletes one since
    problem(client.post("/api/tickets", json=body, headers=KEY), 409)
    assert [t["name"] for t in tickets()] == ["b"], "a replay never undoes anything"
