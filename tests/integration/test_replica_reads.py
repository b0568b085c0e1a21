"""Replica sets against the real server: the write concern writes carry, and where each list GET is read.

The server (SecantusDB unless ``mongod`` is on PATH) advertises itself as a single-node replica set; with a
replica-set URI (``replicaSet=``, no ``directConnection``) PyMongo puts ``$readPreference`` in every command
read in a mode other than primary, and ``writeConcern``/``txnNumber`` in writes. A command listener sees them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pymongo
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

import restengine.db
from restengine import create_app, replicas
from restengine.ops.dbserver import DatabaseServer
from restengine.ops.processes import free_port
from tests.integration.api_helpers import COMMANDS
from tests.keys import TEST_SECRET

WRITER = {"REMOTE_ADDR": "10.0.0.1"}
OTHER = {"REMOTE_ADDR": "10.0.0.2"}
SECONDARY_PREFERRED = {"mode": "secondaryPreferred", "maxStalenessSeconds": 90}


def read_preference(command: dict[str, Any]) -> dict[str, Any]:
    """Where a read command asked to be served (no ``$readPreference``: the primary)."""
    return dict(command.get("$readPreference", {"mode": "primary"}))


def only(sent: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = [command for command in sent if name in command]
    assert len(found) == 1, [next(iter(command)) for command in sent]
    return found[0]


@pytest.fixture
def replica_set_uri(database_server: DatabaseServer) -> str:
    """A replica-set URI (no directConnection) naming a fresh database, as production's would."""
    with pymongo.MongoClient(f"mongodb://127.0.0.1:{database_server.port}/?directConnection=true") as client:
        set_name = client.admin.command("hello").get("setName")
    if not set_name:
        pytest.skip("the test server does not run as a replica set")
    return f"mongodb://127.0.0.1:{database_server.port}/t_{uuid.uuid4().hex[:12]}?replicaSet={set_name}"


def build(uri: str, **overrides: Any) -> Flask:
    config = {
        "MONGODB_URI": uri,
        "RESTENGINE_DOCUMENTS": "restengine.demo.bookstore",
        "RESTENGINE_SECRET_KEY": TEST_SECRET,
        "RESTENGINE_LIST_READ_PREFERENCE": "secondaryPreferred",
        "RESTENGINE_MAX_STALENESS_S": "90",
        "RESTENGINE_CACHE_TTL": "0",
        **overrides,
    }
    return create_app(config)


@pytest.fixture
def app(replica_set_uri: str) -> Iterator[Flask]:
    try:
        yield build(replica_set_uri)
    finally:
        restengine.db.close_all()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def database() -> str:
    return str(restengine.db.get_database().name)


def create_author(client: FlaskClient, environ: dict[str, str] = WRITER) -> dict[str, Any]:
    response = client.post(
        "/api/author", data=json.dumps({"name": "Ada"}), content_type="application/json", environ_base=environ
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return dict(response.get_json())


def list_read(client: FlaskClient, environ: dict[str, str], **headers: str) -> dict[str, Any]:
    with COMMANDS.recording(database()) as sent:
        response = client.get("/api/author", environ_base=environ, headers=headers)
    assert response.status_code in (200, 304), response.get_data(as_text=True)
    return read_preference(only(sent, "find"))


def test_a_list_reads_where_the_setting_says(client: FlaskClient) -> None:
    create_author(client, OTHER)
    assert list_read(client, WRITER) == SECONDARY_PREFERRED


def test_the_writers_own_lists_read_the_primary_and_other_callers_keep_the_setting(client: FlaskClient) -> None:
    create_author(client)
    assert list_read(client, WRITER) == {"mode": "primary"}
    assert list_read(client, OTHER) == SECONDARY_PREFERRED


def test_conditional_lists_and_item_reads_read_the_primary(client: FlaskClient) -> None:
    author = create_author(client, OTHER)
    etag = client.get("/api/author", environ_base=WRITER).headers["ETag"]
    assert list_read(client, WRITER, **{"If-None-Match": etag}) == {"mode": "primary"}
    assert list_read(client, WRITER, **{"If-Match": etag}) == {"mode": "primary"}
    with COMMANDS.recording(database()) as sent:
        assert client.get(f"/api/author/{author['id']}", environ_base=WRITER).status_code == 200
    assert read_preference(only(sent, "find")) == {"mode": "primary"}


def test_expansions_and_counts_of_a_list_are_read_where_the_page_is(client: FlaskClient) -> None:
    author = create_author(client, OTHER)
    body = {"title": "Tide", "author": author["id"], "isbn": "9780000000001"}
    response = client.post("/api/books", data=json.dumps(body), content_type="application/json", environ_base=OTHER)
    assert response.status_code == 201, response.get_data(as_text=True)
    with COMMANDS.recording(database()) as sent:
        response = client.get("/api/books?expand=author&count=exact", environ_base=WRITER)
    assert response.status_code == 200, response.get_data(as_text=True)
    reads = [command for command in sent if "find" in command or "aggregate" in command]
    assert len(reads) == 3, sent
    assert all(read_preference(command) == SECONDARY_PREFERRED for command in reads)


def test_inserts_and_updates_are_majority_and_retryable(client: FlaskClient) -> None:
    with COMMANDS.recording(database()) as sent:
        author = create_author(client)
    insert = only(sent, "insert")
    assert insert["writeConcern"] == {"w": "majority"}
    assert "txnNumber" in insert
    with COMMANDS.recording(database()) as sent:
        response = client.patch(
            f"/api/author/{author['id']}",
            data=json.dumps({"bio": "mathematician"}),
            content_type="application/merge-patch+json",
            environ_base=WRITER,
        )
    assert response.status_code == 200, response.get_data(as_text=True)
    update = only(sent, "update")
    assert update["writeConcern"] == {"w": "majority"}
    assert "txnNumber" in update


def test_the_uri_overrides_the_write_concern(replica_set_uri: str) -> None:
    try:
        client = build(f"{replica_set_uri}&w=1&retryWrites=false").test_client()
        with COMMANDS.recording(database()) as sent:
            create_author(client)
        insert = only(sent, "insert")
        assert insert["writeConcern"] == {"w": 1}
        assert "txnNumber" not in insert
    finally:
        restengine.db.close_all()


def test_a_list_the_shared_cache_keeps_is_filled_from_the_primary(replica_set_uri: str, redis_url: str) -> None:
    try:
        client = build(replica_set_uri, REDIS_URL=redis_url, RESTENGINE_CACHE_TTL="60").test_client()
        assert list_read(client, OTHER) == {"mode": "primary"}
    finally:
        restengine.db.close_all()


def test_two_workers_share_the_recent_writer_mark_through_redis(replica_set_uri: str, redis_url: str) -> None:
    try:
        first = build(replica_set_uri, REDIS_URL=redis_url)
        second = build(replica_set_uri, REDIS_URL=redis_url)
        create_author(first.test_client())
        window = replicas.of(second)
        assert window is not None
        with redis.Redis.from_url(redis_url) as shared:
            assert 0 < shared.ttl("restengine:wrote:addr:10.0.0.1") <= window.window
        assert list_read(second.test_client(), WRITER) == {"mode": "primary"}
        assert list_read(second.test_client(), OTHER) == SECONDARY_PREFERRED
    finally:
        restengine.db.close_all()


def test_lists_read_the_primary_when_redis_cannot_say(replica_set_uri: str) -> None:
    try:
        client = build(replica_set_uri, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0").test_client()
        assert list_read(client, OTHER) == {"mode": "primary"}
    finally:
        restengine.db.close_all()


DATA_API = "/app/data-abcde/endpoint/data/v1"


def test_data_api_writes_mark_their_caller_and_its_finds_read_the_primary(replica_set_uri: str) -> None:
    try:
        client = build(replica_set_uri, RESTENGINE_DATA_API=DATA_API).test_client()
        call = {"dataSource": "mongodb-atlas", "database": database(), "collection": "author"}
        with COMMANDS.recording(database()) as sent:
            response = client.post(
                f"{DATA_API}/action/insertOne", json={**call, "document": {"name": "Ada"}}, environ_base=WRITER
            )
            assert response.status_code == 200, response.get_data(as_text=True)
        assert only(sent, "insert")["writeConcern"] == {"w": "majority"}
        assert list_read(client, WRITER) == {"mode": "primary"}
        with COMMANDS.recording(database()) as sent:
            response = client.post(f"{DATA_API}/action/find", json=call, environ_base=OTHER)
            assert response.status_code == 200, response.get_data(as_text=True)
        assert read_preference(only(sent, "find")) == {"mode": "primary"}
    finally:
        restengine.db.close_all()


def test_a_profiles_lists_follow_the_setting(replica_set_uri: str) -> None:
    try:
        client = build(replica_set_uri, RESTENGINE_PROFILE="eve").test_client()
        response = client.post("/api/author", json={"name": "Ada"}, environ_base=WRITER)
        assert response.status_code == 201, response.get_data(as_text=True)
        assert list_read(client, WRITER) == {"mode": "primary"}
        assert list_read(client, OTHER) == SECONDARY_PREFERRED
    finally:
        restengine.db.close_all()
