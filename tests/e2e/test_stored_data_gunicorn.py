"""Stored data never breaks a read, through real gunicorn workers on the real database server (issue 12)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pymongo
from bson import ObjectId, Regex

from tests.e2e.helpers import call, gunicorn
from tests.keys import TEST_SECRET

APP = "restengine.wsgi:app"


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def test_legacy_values_read_through_gunicorn(tmp_path: Path, mongodb_uri: str) -> None:
    env = {
        "MONGODB_URI": mongodb_uri,
        "RESTENGINE_DOCUMENTS": "tests.stored_data_models",
        "RESTENGINE_SECRET_KEY": TEST_SECRET,
    }
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(mongodb_uri)
    try:
        legacy = client.get_default_database()["legacy"]
        deep, typed = ObjectId(), ObjectId()
        legacy.insert_many(
            [
                {"_id": deep, "title": "deep", "anything": nested(300), "settings": {"r": Regex("x")}},
                {"_id": typed, "title": {"not": "text"}, "count": "12", "parts": [{"_cls": "Gear", "teeth": "x"}]},
            ]
        )
        with gunicorn(tmp_path, env, app=APP) as (port, log):
            status, headers, item = call(port, "GET", f"/api/legacy/{deep}")
            assert status == 200 and item["_unreadable"] == ["anything.0", "settings"], item
            assert item["anything"] == [None] and item["settings"] is None and item["title"] == "deep"
            status, again, _ = call(port, "GET", f"/api/legacy/{deep}")
            assert status == 200 and again["etag"] == headers["etag"]
            status, _, page = call(port, "GET", "/api/legacy?limit=100&count=exact")
            assert status == 200 and page["count"] == 2, page
            by_id = {i["id"]: i for i in page["items"]}
            assert by_id[str(deep)] == item
            assert by_id[str(typed)]["_unreadable"] == ["count", "parts.0.teeth", "title"]
            assert by_id[str(typed)]["parts"] == [{"_cls": "Gear", "name": None, "size": None, "teeth": None}]
            patch_headers = {"Content-Type": "application/merge-patch+json", "If-Match": headers["etag"]}
            status, _, changed = call(port, "PATCH", f"/api/legacy/{deep}", {"count": 1}, patch_headers)
            assert status == 200 and changed["count"] == 1 and changed["_unreadable"] == item["_unreadable"], changed
        text = log.read_text()
        assert "Traceback" not in text, text
        assert "unreadable stored value: collection legacy" in text and "field anything.0" in text
    finally:
        client.close()
