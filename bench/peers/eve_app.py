"""Eve over the bookstore's ``books`` and ``author`` collections.

Eve builds the REST API from a settings dict: the schema validates writes (Cerberus),
``data_relation`` checks and embeds the author. Eve connects lazily, per process, on
the first request. POST adds Eve's ``_created``/``_updated``/``_etag`` fields.

Run from the repository root, with ``MONGODB_URI`` set (gunicorn.conf.py also wants
``RESTENGINE_SECRET_KEY``)::

    gunicorn -c gunicorn.conf.py --bind 127.0.0.1:P bench.peers.eve_app:app

URLs (Eve's own query syntax):
``GET /api/books/<id>``, ``GET /api/books?where={"tags":"T"}&max_results=20[&embedded={"author":1}][&page=N]``,
``POST /api/books``, ``GET /healthz``.
"""

from __future__ import annotations

import os
from typing import Any

from eve import Eve
from flask import jsonify

from restengine.demo.bookstore import CURRENCIES

author_schema: dict[str, Any] = {
    "name": {"type": "string", "required": True, "maxlength": 120},
    "born": {"type": "datetime"},
    "country": {"type": "string", "maxlength": 2, "regex": r"^[A-Z]{2}$"},
    "bio": {"type": "string"},
}

review_schema: dict[str, Any] = {
    "reviewer": {"type": "string", "required": True, "maxlength": 80},
    "rating": {"type": "integer", "required": True, "min": 1, "max": 5},
    "text": {"type": "string"},
    "created": {"type": "datetime"},
}

book_schema: dict[str, Any] = {
    "title": {"type": "string", "required": True, "maxlength": 200},
    "isbn": {"type": "string", "regex": r"^\d{13}$", "unique": True},
    "author": {
        "type": "objectid",
        "required": True,
        "data_relation": {"resource": "author", "field": "_id", "embeddable": True},
    },
    "tags": {"type": "list", "schema": {"type": "string", "maxlength": 32}},
    # Stored as a float (MongoEngine's DecimalField with force_string=False); clients send "9.99".
    "price": {"type": "number", "min": 0, "coerce": lambda v: round(float(v), 2)},
    "currency": {"type": "string", "allowed": list(CURRENCIES)},
    "published": {"type": "datetime"},
    "pages": {"type": "integer", "min": 1},
    "in_stock": {"type": "boolean", "default": True},
    "reviews": {"type": "list", "schema": {"type": "dict", "schema": review_schema}},
}

SETTINGS: dict[str, Any] = {
    "MONGO_URI": os.environ["MONGODB_URI"],
    "URL_PREFIX": "api",
    "RESOURCE_METHODS": ["GET", "POST"],
    "ITEM_METHODS": ["GET"],
    "PAGINATION": True,
    "PAGINATION_DEFAULT": 20,
    "X_DOMAINS": None,
    # Answer a POST with the whole stored book (Eve's default sends back only _id, _etag and dates).
    "BANDWIDTH_SAVER": False,
    "DOMAIN": {
        "books": {
            "datasource": {"source": "books", "default_sort": [("_id", 1)]},
            "schema": book_schema,
        },
        "author": {
            "datasource": {"source": "author", "default_sort": [("_id", 1)]},
            "schema": author_schema,
        },
    },
}

app = Eve(settings=SETTINGS)


@app.route("/healthz")
def healthz() -> Any:
    return jsonify(status="ok")
