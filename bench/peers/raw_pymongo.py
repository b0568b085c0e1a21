"""A ceiling: Flask and PyMongo with nothing in between.

One ``MongoClient`` per process, created on the first request (``connect=False``, so a
fork never inherits a live connection); the stored document is converted by hand
(``_id`` → ``id``, the author reference as a string) and encoded by orjson, which writes
the datetimes as ISO 8601 UTC. No expand, no create.

Run from the repository root, with ``MONGODB_URI`` set (gunicorn.conf.py also wants
``RESTENGINE_SECRET_KEY``)::

    gunicorn -c gunicorn.conf.py --bind 127.0.0.1:P bench.peers.raw_pymongo:app

URLs: ``GET /api/books/<id>``, ``GET /api/books?tags=T&limit=20[&page=N]``, ``GET /healthz``.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import orjson
from bson import ObjectId
from bson.errors import InvalidId
from flask import Flask, Response, request
from pymongo import MongoClient
from pymongo.collection import Collection

app = Flask(__name__)

_client: MongoClient[dict[str, Any]] | None = None
_client_lock = threading.Lock()

MAX_LIMIT = 100
JSON_OPTIONS = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z


def books() -> Collection[dict[str, Any]]:
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                _client = MongoClient(os.environ["MONGODB_URI"], connect=False)
    return _client.get_default_database().books


def _default(value: Any) -> Any:
    if isinstance(value, ObjectId):
        return str(value)
    raise TypeError


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload, default=_default, option=JSON_OPTIONS), status, mimetype="application/json")


def book_out(doc: dict[str, Any]) -> dict[str, Any]:
    doc["id"] = doc.pop("_id")
    return doc


@app.get("/healthz")
def healthz() -> Response:
    return json_response({"status": "ok"})


@app.get("/api/books/<book_id>")
def get_book(book_id: str) -> Response:
    try:
        oid = ObjectId(book_id)
    except InvalidId:
        return json_response({"error": "book not found"}, 404)
    doc = books().find_one({"_id": oid})
    if doc is None:
        return json_response({"error": "book not found"}, 404)
    return json_response(book_out(doc))


@app.get("/api/books")
def list_books() -> Response:
    try:
        limit = int(request.args.get("limit", 20))
        page = int(request.args.get("page", 1))
    except ValueError:
        return json_response({"error": "limit and page must be integers"}, 400)
    if not 1 <= limit <= MAX_LIMIT or page < 1:
        return json_response({"error": f"limit must be 1..{MAX_LIMIT}, page >= 1"}, 400)
    if "expand" in request.args:
        return json_response({"error": "expand is not supported by this peer"}, 400)
    tag = request.args.get("tags")
    query = {"tags": tag} if tag is not None else {}
    docs = books().find(query).sort("_id", 1).skip((page - 1) * limit).limit(limit)
    return json_response({"items": [book_out(doc) for doc in docs]})
