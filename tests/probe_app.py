"""A RestEngine app plus one test-only route that reads the database.

The resource layer's routes are what production serves; this route lets the
platform tests exercise the database path (deadline, pool, error mapping)
through the real factory, under the Flask test client or gunicorn
(``gunicorn -c gunicorn.conf.py tests.probe_app:app``).
"""

from __future__ import annotations

import os

from flask import Blueprint, Flask, Response

from restengine import create_app, db
from restengine.jsonresp import json_response

probe = Blueprint("probe", __name__)


@probe.get("/probe")
def read_one() -> Response:
    doc = db.get_database().probe.find_one({}, {"_id": 0})
    return json_response({"doc": doc})


def make_app(config: dict[str, object] | None = None) -> Flask:
    app = create_app(config)
    app.register_blueprint(probe)
    if os.environ.get("PROBE_QUERY_AT_IMPORT"):
        # Like many legacy apps: touch the database while the app is built,
        # i.e. in gunicorn's master when the app is preloaded.
        db.get_database().command("ping")
    return app


def __getattr__(name: str) -> Flask:
    # gunicorn imports "tests.probe_app:app"; build it then, not at test collection.
    if name == "app":
        return make_app()
    raise AttributeError(name)
