"""The Atlas Data API profile through real gunicorn workers on the real database: a client as its docs show it.

Each request is the reference's curl example adapted to the legacy shop: ``POST <base>/action/<action>`` with
an ``apiKey`` header, EJSON in (``Content-Type: application/ejson``) and JSON or EJSON out (``Accept``).
"""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

from bson import json_util

from tests.e2e.helpers import create_key, gunicorn
from tests.keys import TEST_SECRET

APP = "restengine.wsgi:app"
BASE = "/app/data-abcde/endpoint/data/v1"
POLICY = """
[roles.clerk]
customers = ["read", "create", "update", "delete"]
orders = ["read"]
"""


def action(
    port: int, name: str, body: dict[str, Any], headers: dict[str, str], accept: str = "application/json"
) -> tuple[int, str, Any]:
    """One Data API call on a fresh connection: (status, content type, body read as EJSON)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        data = json_util.dumps(body, json_options=json_util.CANONICAL_JSON_OPTIONS)
        sent = {"Content-Type": "application/ejson", "Accept": accept, **headers}
        conn.request("POST", f"{BASE}/action/{name}", body=data, headers=sent)
        response = conn.getresponse()
        raw = response.read().decode()
        return response.status, response.getheader("Content-Type", ""), json_util.loads(raw)
    finally:
        conn.close()


def test_a_data_api_client_through_gunicorn(tmp_path: Path, mongodb_uri: str) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    env = {
        "MONGODB_URI": mongodb_uri,
        "RESTENGINE_DOCUMENTS": "tests.legacy_models",
        "RESTENGINE_SECRET_KEY": TEST_SECRET,
        "RESTENGINE_AUTH": "on",
        "RESTENGINE_POLICY": str(policy),
        "RESTENGINE_DATA_API": BASE,
    }
    clerk = {"apiKey": create_key(env, "clerk", "data-api")}
    database = mongodb_uri.rsplit("/", 1)[1].split("?")[0]
    where = {"dataSource": "mongodb-atlas", "database": database, "collection": "customers"}
    with gunicorn(tmp_path, env, app=APP) as (port, log):
        status, kind, body = action(port, "insertOne", {**where, "document": {"_id": "GUN001", "name": "Gun"}}, {})
        assert (status, kind, body["error_code"]) == (401, "application/json", "InvalidSession"), body
        assert set(body) == {"error", "error_code", "link"}

        documents = [{"_id": f"GUN00{n}", "name": f"Gun {n}", "email": f"gun{n}@example.com"} for n in (1, 2, 3)]
        status, _, body = action(port, "insertMany", {**where, "documents": documents}, clerk)
        assert status == 200 and body == {"insertedIds": ["GUN001", "GUN002", "GUN003"]}, body

        query = {**where, "filter": {"name": {"$in": ["Gun 1", "Gun 2"]}}, "sort": {"name": -1}, "limit": 10}
        status, kind, body = action(port, "find", query, clerk, accept="application/ejson")
        assert status == 200 and kind.startswith("application/ejson"), body
        assert [d["_id"] for d in body["documents"]] == ["GUN002", "GUN001"]

        change = {
            **where,
            "filter": {"_id": "GUN001"},
            "update": {"$set": {"name": "Gun Uno"}, "$push": {"tags": "e2e"}},
        }
        status, _, body = action(port, "updateOne", change, clerk)
        assert status == 200 and body == {"matchedCount": 1, "modifiedCount": 1}, body
        status, _, body = action(port, "findOne", {**where, "filter": {"_id": "GUN001"}}, clerk)
        assert body["document"]["name"] == "Gun Uno" and body["document"]["tags"] == ["e2e"], body
        status, _, body = action(port, "findOne", {**where, "filter": {"name": {"$regex": "Gun"}}}, clerk)
        assert (status, body["error_code"]) == (400, "InvalidParameter"), body

        status, _, body = action(port, "deleteMany", {**where, "filter": {"name": {"$ne": "Gun Uno"}}}, clerk)
        assert status == 200 and body == {"deletedCount": 2}, body
        status, _, body = action(port, "deleteOne", {**where, "collection": "orders", "filter": {}}, clerk)
        assert (status, body["error_code"]) == (403, "NoMatchingRuleFound"), body
        status, _, body = action(port, "find", {**where, "collection": "keys"}, clerk)
        assert (status, body["error_code"]) == (404, "NotFound"), body
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", f"{BASE}/action/find")
        response = conn.getresponse()
        assert response.status == 405 and json.loads(response.read())["error_code"] == "MethodNotAllowed"
        conn.close()
    assert "Traceback" not in log.read_text()
