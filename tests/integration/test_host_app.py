"""Issue 13: the team's own Flask app (RESTENGINE_APP) serves its Documents, and declared indexes exist before
the first request (RESTENGINE_INDEXES); real database server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import mongoengine
import pymongo
import pytest
from flask import Flask

import restengine
from restengine import create_app
from restengine.config import ConfigError, load_settings
from restengine.hostapp import locate
from restengine.ops.indexes import missing_indexes, prepare_indexes, startup_indexes
from tests.host_app import Bookmark
from tests.integration.api_helpers import legacy_registry, ok, problem, run_cli
from tests.keys import TEST_SECRET
from tests.legacy_models import Customer

APP = "tests.host_app:create_app('test')"


def other_database(mongodb_uri: str) -> str:
    """The URI of a second fresh database on the same server (the host app's own, RestEngine's own)."""
    return mongodb_uri.replace("/t_", "/legacy_t_", 1)


@pytest.fixture
def host(mongodb_uri: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setenv("LEGACY_MONGODB_URI", other_database(mongodb_uri))
    app = create_app(
        {
            "RESTENGINE_APP": APP,
            "RESTENGINE_DOCUMENTS": "tests.host_app",
            "MONGODB_URI": mongodb_uri,
            "RESTENGINE_SECRET_KEY": TEST_SECRET,
        }
    )
    with app.app_context():
        Bookmark.ensure_indexes()
        yield app
    restengine.db.close_all()
    mongoengine.disconnect_all()


def test_writes_run_the_apps_validators_clean_and_signals_in_its_context(host: Flask) -> None:
    client = host.test_client()
    created = ok(client.post("/api/bookmarks", json={"url": "https://example.com", "owner": "a@example.com"}), 201)
    assert client.get("/hello").get_json() == {"marked": True, "environment": "test", "saved": [created["id"]]}
    refused = problem(client.post("/api/bookmarks", json={"url": "http://127.0.0.1/admin"}), 422)
    assert "private" in str(refused["errors"])
    refused = problem(client.post("/api/bookmarks", json={"url": "https://e.com", "title": "t" * 41}), 422)
    assert "too long" in str(refused["errors"])
    problem(client.post("/api/bookmarks", json={"url": "https://e.com", "owner": "a@example.com"}), 409)


def test_the_app_keeps_its_own_routes_hooks_error_handlers_and_connection(host: Flask, mongodb_uri: str) -> None:
    client = host.test_client()
    assert client.get("/nowhere").get_json() == {"legacy": "nothing here"}, "its own 404 handler for its routes"
    problem(client.get("/api/bookmarks/ffffffffffffffffffffffff"), 404)  # the API's errors stay problem+json
    assert client.get("/healthz").status_code == 200
    ok(client.post("/api/bookmarks", json={"url": "https://example.com"}), 201)
    with pymongo.MongoClient(other_database(mongodb_uri)) as theirs:
        assert theirs.get_default_database()["bookmarks"].count_documents({}) == 1, "written where the app connects"
    with pymongo.MongoClient(mongodb_uri) as ours:
        assert "bookmarks" not in ours.get_default_database().list_collection_names()
    options = mongoengine.get_connection().options
    assert options.pool_options.max_pool_size == load_settings().threads + 2, "RestEngine's pool sizing applies"
    assert options.timeout == 1.5, "and its deadline"


def test_the_app_is_located_as_flask_finds_it(monkeypatch: pytest.MonkeyPatch, mongodb_uri: str) -> None:
    monkeypatch.setenv("LEGACY_MONGODB_URI", mongodb_uri)
    try:
        assert locate("tests.host_app:create_app('x')").config["ENVIRONMENT"] == "x"
        assert locate("tests.host_app:create_app").config["ENVIRONMENT"] == "production"
        mongoengine.disconnect_all()
        for spec, reason in [
            ("tests.no_such_module:app", "tests.no_such_module"),
            ("tests.host_app:missing", "missing"),
            ("tests.host_app:create_app(os.getcwd())", "create_app"),
        ]:
            with pytest.raises(ConfigError, match="RESTENGINE_APP") as caught:
                locate(spec)
            assert reason in str(caught.value)
    finally:
        mongoengine.disconnect_all()


# ---------------------------------------------------------------- RESTENGINE_INDEXES


@pytest.fixture
def customers(mongodb_uri: str) -> Iterator[Any]:
    """The collection, through a client of the test's own (start-up closes RestEngine's when it is done)."""
    with legacy_registry(), pymongo.MongoClient(mongodb_uri) as client:
        yield client.get_default_database()["customers"]
        restengine.db.close_all()


def settings(mongodb_uri: str, mode: str) -> Any:
    return load_settings(
        {"MONGODB_URI": mongodb_uri, "RESTENGINE_DOCUMENTS": "tests.legacy_models", "RESTENGINE_INDEXES": mode}
    )


def test_check_refuses_to_start_naming_the_missing_index(mongodb_uri: str, customers: Any) -> None:
    named = r"RESTENGINE_INDEXES=check: .*customers: \{mail: 1\} \(declared by Customer\)"
    with pytest.raises(ConfigError, match=named):
        startup_indexes(settings(mongodb_uri, "check"))
    assert "mail_1" not in customers.index_information(), "check builds nothing"


def test_create_builds_what_is_missing_once(mongodb_uri: str, customers: Any) -> None:
    lines = startup_indexes(settings(mongodb_uri, "create"))
    assert "created index customers: {mail: 1} (declared by Customer)" in lines, lines
    restengine.db.register(load_settings({"MONGODB_URI": mongodb_uri}))
    assert missing_indexes([Customer]) == []
    assert startup_indexes(settings(mongodb_uri, "check")) == []
    assert startup_indexes(settings(mongodb_uri, "create")) == [], "nothing to create the second time"


def test_off_builds_nothing_and_says_so(mongodb_uri: str, customers: Any) -> None:
    lines = startup_indexes(settings(mongodb_uri, "off"))
    assert "RESTENGINE_INDEXES=off" in lines[0]
    assert "mail_1" not in customers.index_information()


def test_a_unique_index_existing_duplicates_violate_stops_start_up_with_an_example(
    mongodb_uri: str, customers: Any
) -> None:
    customers.insert_many(
        [
            {"_id": "DUP001", "name": "A", "mail": "twin@example.com"},
            {"_id": "DUP002", "name": "B", "mail": "twin@example.com"},
        ]
    )
    restengine.db.register(load_settings({"MONGODB_URI": mongodb_uri}))
    with pytest.raises(ConfigError) as caught:
        prepare_indexes([Customer], "create")
    message = str(caught.value)
    assert "customers" in message and "{mail: 1}" in message and "twin@example.com" in message, message
    assert "DUP001" in message and "RESTENGINE_INDEXES=off" in message


def test_the_indexes_command_takes_the_app_and_uses_its_connection(mongodb_uri: str) -> None:
    theirs = other_database(mongodb_uri)
    done = run_cli("indexes", "--app", APP, MONGODB_URI=mongodb_uri, LEGACY_MONGODB_URI=theirs)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "bookmarks: created owner_1 (0 existing)", "the Documents the app imported"
    with pymongo.MongoClient(theirs) as client:
        assert "owner_1" in client.get_default_database()["bookmarks"].index_information()
    failed = run_cli("indexes", "--app", "tests.host_app:nothing", MONGODB_URI=mongodb_uri)
    assert failed.returncode != 0 and "RESTENGINE_APP" in failed.stderr and "Traceback" not in failed.stderr
