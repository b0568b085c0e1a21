"""Issue 13 through real gunicorn: the team's own app (RESTENGINE_APP) with its Documents, and declared
indexes that exist before the first request, as RESTENGINE_INDEXES says."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from restengine.ops.processes import free_port
from tests.e2e.helpers import ROOT, call, get_json, gunicorn, gunicorn_argv
from tests.keys import TEST_SECRET

APP = "restengine.wsgi:app"


def test_the_teams_own_app_serves_its_documents(tmp_path: Path, mongodb_uri: str) -> None:
    env = {
        "MONGODB_URI": mongodb_uri,
        "LEGACY_MONGODB_URI": mongodb_uri,  # the app connects MongoEngine itself
        "RESTENGINE_APP": "tests.host_app:create_app('gunicorn')",
        "RESTENGINE_SECRET_KEY": TEST_SECRET,
    }
    with gunicorn(tmp_path, env, app=APP) as (port, log):
        status, index = get_json(port, "/api/")
        assert status == 200 and [r["name"] for r in index["resources"]] == ["bookmarks"], "what the app imported"
        body = {"url": "https://example.com", "owner": "a@example.com", "title": "ok"}
        status, _, created = call(port, "POST", "/api/bookmarks", body)
        assert status == 201, created  # a bare app: a KeyError on the app's config in the validator, a 500
        status, _, refused = call(port, "POST", "/api/bookmarks", {**body, "url": "http://127.0.0.1/"})
        assert status == 422 and "private" in str(refused["errors"]), refused
        status, _, duplicate = call(port, "POST", "/api/bookmarks", {**body, "url": "https://example.org"})
        assert status == 409, ("the unique index was built at start-up, before any request", duplicate)
        status, hello = get_json(port, "/hello")
        assert status == 200 and hello["marked"] is True and hello["environment"] == "gunicorn"
        assert "created index bookmarks: {owner: 1}" in log.read_text()


def test_a_duplicate_is_a_409_with_serve_alone_on_a_fresh_database(tmp_path: Path, mongodb_uri: str) -> None:
    env = {
        "MONGODB_URI": mongodb_uri,
        "RESTENGINE_DOCUMENTS": "tests.legacy_models",
        "RESTENGINE_SECRET_KEY": TEST_SECRET,
    }
    with gunicorn(tmp_path, env, app=APP) as (port, _):
        first = {"code": "UNQ001", "name": "One", "email": "same@example.com"}
        assert call(port, "POST", "/api/customers", first)[0] == 201
        status, _, body = call(port, "POST", "/api/customers", {**first, "code": "UNQ002"})
        assert status == 409 and body["detail"] == "Another item has the same email.", body


def test_check_mode_refuses_to_start_naming_the_missing_index(tmp_path: Path, mongodb_uri: str) -> None:
    env = {
        **os.environ,
        "MONGODB_URI": mongodb_uri,
        "RESTENGINE_DOCUMENTS": "tests.legacy_models",
        "RESTENGINE_SECRET_KEY": TEST_SECRET,
        "RESTENGINE_INDEXES": "check",
    }
    done = subprocess.run(
        gunicorn_argv(free_port(), APP), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0
    assert "RESTENGINE_INDEXES=check" in done.stderr and "customers: {mail: 1} (declared by Customer)" in done.stderr
