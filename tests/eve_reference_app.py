"""A real Eve service over the demo bookstore, the reference the Eve profile is compared with.

Eve's settings for the bookstore (bench.peers.eve_app's schemas), with the page sizes of RestEngine's
resources (25 by default, at most 100) and the item methods an Eve client writes with. Run by gunicorn
with ``MONGODB_URI`` set.
"""

from __future__ import annotations

from typing import Any

from eve import Eve
from flask import jsonify

from bench.peers import eve_app

SETTINGS: dict[str, Any] = {
    **eve_app.SETTINGS,
    "PAGINATION_DEFAULT": 25,
    "PAGINATION_LIMIT": 100,
    "ITEM_METHODS": ["GET", "PATCH", "PUT", "DELETE"],
    # Fresh resource settings: Eve writes its defaults into the ones it is given (bench's app has its own).
    "DOMAIN": {
        "books": {"datasource": {"source": "books", "default_sort": [("_id", 1)]}, "schema": eve_app.book_schema},
        "author": {"datasource": {"source": "author", "default_sort": [("_id", 1)]}, "schema": eve_app.author_schema},
    },
}

app = Eve(settings=SETTINGS)


@app.route("/healthz")
def healthz() -> Any:
    return jsonify(status="ok")
