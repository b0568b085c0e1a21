from __future__ import annotations

from restengine import db
from restengine.config import load_settings
from tests.keys import TEST_SECRET


def test_pool_is_sized_from_the_threads_with_deadlines() -> None:
    settings = load_settings({"RESTENGINE_THREADS": 12, "RESTENGINE_DB_TIMEOUT_MS": 900}, environ={})
    options = db.client_options(settings)
    assert options["maxPoolSize"] >= 12
    assert options["minPoolSize"] == 1
    assert options["maxIdleTimeMS"] == 60_000
    assert options["appname"] == "restengine"
    assert options["timeoutMS"] == 900
    assert options["serverSelectionTimeoutMS"] <= 900


def test_registered_client_carries_the_options_without_connecting() -> None:
    settings = load_settings({"RESTENGINE_THREADS": 5, "MONGODB_URI": "mongodb://127.0.0.1:1/shop"}, environ={})
    db.register(settings)
    try:
        client = db.get_database().client
        assert db.get_database().name == "shop"
        assert client.options.pool_options.max_pool_size == 7
        assert client.options.pool_options.max_idle_time_seconds == 60
        assert client.options.timeout == 1.5
        assert client.topology_description.topology_type_name == "Unknown", "nothing contacted yet"
    finally:
        db.close_all()


def test_after_fork_drops_the_client_but_keeps_the_settings() -> None:
    db.register(load_settings({"MONGODB_URI": "mongodb://127.0.0.1:1/shop"}, environ={}))
    try:
        before = db.get_database().client
        db.after_fork()
        after = db.get_database().client
        assert after is not before
        assert after.options.pool_options.max_pool_size == before.options.pool_options.max_pool_size
    finally:
        db.close_all()


def test_every_api_view_runs_under_the_request_deadline() -> None:
    from flask import Flask, Response

    from restengine.api import Api
    from restengine.api.caching import CachePolicy
    from restengine.api.views import Views

    seen: list[float | None] = []

    def view() -> Response:
        seen.append(__import__("pymongo")._csot.get_timeout())
        return Response()

    api = Api(secret_key=TEST_SECRET, db_timeout_ms=250)
    with Flask(__name__).test_request_context():
        Views(api, CachePolicy(None)).guarded(view)()
    assert seen == [0.25]
