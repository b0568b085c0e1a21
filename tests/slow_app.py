"""A host app with one slow route (``/slow?s=<seconds>``, at most 5): a request that holds its thread, to fill
a worker's thread pool in tests of admission control (tests/e2e/test_admission_gunicorn.py)."""

from __future__ import annotations

import time

from flask import Flask, Response, jsonify, request

app = Flask(__name__)


@app.get("/slow")
def slow() -> Response:
    seconds = min(5.0, max(0.0, float(request.args.get("s", "1"))))
    time.sleep(seconds)
    return jsonify({"slept": seconds})
