"""The Flask-MongoRest profile through real gunicorn workers on the real database: a client as its README shows
it (``/books/`` with a trailing slash, ``field__op`` filters, ``_skip``/``_limit``, ``{"data", "has_more"}``)."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.helpers import call, gunicorn
from tests.keys import TEST_SECRET


def test_a_mongorest_client_reads_and_writes_through_gunicorn(tmp_path: Path, mongodb_uri: str) -> None:
    env = {
        "MONGODB_URI": mongodb_uri,
        "RESTENGINE_SECRET_KEY": TEST_SECRET,
        "RESTENGINE_DOCUMENTS": "restengine.demo.bookstore",
        "RESTENGINE_PROFILE": "mongorest",
    }
    with gunicorn(tmp_path, env, app="restengine.wsgi:app") as (port, _):
        status, _, author = call(port, "POST", "/api/author/", {"name": "Ada Lovelace", "country": "GB"})
        assert status == 200 and isinstance(author["id"], str), author
        for n in range(7):
            book = {"title": f"Notes {n}", "author": author["id"], "pages": 100 + n, "isbn": f"97800000000{n:02d}"}
            status, _, created = call(port, "POST", "/api/books/", book)
            assert status == 200 and created["pages"] == 100 + n, created
        status, _, page = call(port, "GET", "/api/books/?pages__gte=102&_order_by=-pages&_limit=3&_fields=title")
        assert status == 200 and page["has_more"] is True, page
        assert [b["title"] for b in page["data"]] == ["Notes 6", "Notes 5", "Notes 4"]
        assert set(page["data"][0]) == {"id", "title"}
        status, _, rest = call(port, "GET", "/api/books/?pages__gte=102&_order_by=-pages&_limit=3&_skip=3")
        assert status == 200 and rest["has_more"] is False and len(rest["data"]) == 2

        target = page["data"][0]["id"]
        status, _, updated = call(port, "PUT", f"/api/books/{target}/", {"pages": 600})
        assert status == 200 and updated["pages"] == 600 and updated["title"] == "Notes 6", updated
        status, _, gone = call(port, "DELETE", f"/api/books/{target}/")
        assert (status, gone) == (200, {})
        status, headers, missing = call(port, "GET", f"/api/books/{target}/")
        assert status == 404 and headers["content-type"] == "application/json" and set(missing) == {"error"}

        status, _, refused = call(port, "POST", "/api/books/", {"title": 7})
        assert status == 400 and set(refused["field-errors"]) == {"title", "author"}, refused
        status, _, refused = call(port, "GET", "/api/books/?_limit=5000")
        assert status == 400 and "max_limit" in refused["error"], refused
