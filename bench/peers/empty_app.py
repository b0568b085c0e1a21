"""The ceiling: a bare Flask app with one empty endpoint, served on RestEngine's gunicorn config.

Run from the repository root: ``gunicorn -c gunicorn.conf.py bench.peers.empty_app:app``.
"""

from flask import Flask

app = Flask(__name__)


@app.get("/empty")
def empty() -> tuple[str, int]:
    return "", 200
