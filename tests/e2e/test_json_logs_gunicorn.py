"""``RESTENGINE_LOG_FORMAT=json`` under gunicorn: every line the instance writes is one JSON object, and with the
access log on each request is one line with its request id, route template, status, duration and subject."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt

from tests.e2e.helpers import get, gunicorn
from tests.keys import OTHER_SECRET


def test_every_line_is_json_and_requests_carry_their_fields(tmp_path: Path, mongodb_uri: str) -> None:
    env = {
        "MONGODB_URI": mongodb_uri,
        "RESTENGINE_DOCUMENTS": "tests.legacy_models",
        "RESTENGINE_LOG_FORMAT": "json",
        "RESTENGINE_ACCESS_LOG": "on",
        "RESTENGINE_AUTH": "on",
        "RESTENGINE_JWT_SECRET": OTHER_SECRET,
    }
    token = jwt.encode({"sub": "alice", "roles": [], "exp": int(time.time()) + 60}, OTHER_SECRET, "HS256")
    with gunicorn(tmp_path, env, app="restengine.wsgi:app") as (port, log):
        assert (
            get(
                port,
                "/api/customers/NOP999",
                headers={"Authorization": f"Bearer {token}", "X-Request-ID": "rid-json-1"},
            )[0]
            == 404
        )
        assert get(port, "/nowhere/at/all")[0] == 404
        assert get(port, "/api/customers", headers={"Authorization": "Bearer rek_not_valid"})[0] == 401
        deadline = time.monotonic() + 5
        while log.read_text().count('"logger": "restengine.access"') < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line, gunicorn's and the app's: JSON
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert any(r["logger"] == "gunicorn.error" and "Booting worker" in r["message"] for r in records)
    access = [r for r in records if r["logger"] == "restengine.access"]
    item = next(r for r in access if r["request_id"] == "rid-json-1")
    assert item["route"] == "/api/customers/{id}" and item["path"] == "/api/customers/NOP999"
    assert item["status"] == 404 and item["method"] == "GET" and item["subject"] == "alice"
    assert isinstance(item["duration_ms"], float) and item["client"] == "127.0.0.1"
    assert any(r["route"] == "unmatched" and r["status"] == 404 for r in access), "never a raw path as a route"
    refused = next(r for r in access if r["status"] == 401)
    assert refused["subject"] is None and refused["request_id"]
    text = log.read_text()
    assert token not in text and "rek_not_valid" not in text, "no credential is ever logged"
