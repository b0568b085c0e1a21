"""CORS in a real browser: a page on another loopback port calls the API with ``fetch``.

The API runs on gunicorn with ``RESTENGINE_CORS_ORIGINS`` naming one page's origin, the access check on,
the shared cache on (Redis), the demo documents on the real database server. Headless Chromium (driven over
the DevTools protocol, as for ``/docs``) loads a blank page from a small static server on another port: from
the allowed origin it reads an author's ``ETag`` (also from a cached hit) and sends an authenticated
``PATCH`` with ``If-Match`` (a preflighted request); from an origin not named, the browser withholds the
answer from the script.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from restengine.auth.keys import COLLECTION, KeyStore
from tests.e2e.browser import DevTools
from tests.e2e.helpers import gunicorn


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def site(root: Path) -> Iterator[str]:
    """A static web site on a free loopback port serving ``root``: its origin."""
    root.mkdir()
    (root / "index.html").write_text("<!doctype html><title>another site</title><p>a page on another origin")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def open_page(page: DevTools, url: str) -> None:
    navigated = page.call("Page.navigate", url=url)
    assert "errorText" not in navigated, navigated
    page.wait("document.readyState === 'complete' && document.title === 'another site'", f"{url} to load")


def test_an_allowed_origin_reads_and_writes_and_another_is_refused(
    tmp_path: Path, mongodb_uri: str, redis_url: str
) -> None:
    client: MongoClient[dict[str, Any]] = MongoClient(mongodb_uri, serverSelectionTimeoutMS=10_000)
    with client:
        database = client.get_default_database()
        _, key = KeyStore(lambda: database[COLLECTION]).create("admin", name="cors")
        author = str(database.author.insert_one({"name": "Ada Lovelace", "country": "GB"}).inserted_id)
    with site(tmp_path / "allowed") as allowed, site(tmp_path / "other") as other:
        env = {"MONGODB_URI": mongodb_uri, "RESTENGINE_DOCUMENTS": "restengine.demo.bookstore",
               "RESTENGINE_AUTH": "on", "RESTENGINE_CORS_ORIGINS": allowed, "REDIS_URL": redis_url}  # fmt: skip
        with gunicorn(tmp_path, env, app="restengine.wsgi:app") as (port, _log):
            api = f"http://127.0.0.1:{port}/api/author/{author}"
            page = DevTools(tmp_path / "profile", tmp_path / "chromium.log")
            try:
                open_page(page, f"{allowed}/")
                read = page.js(
                    f"fetch({json.dumps(api)}).then(async r => ({{status: r.status, etag: r.headers.get('ETag'),"
                    " cache: r.headers.get('X-Cache'), name: (await r.json()).name}))"
                )
                assert read["status"] == 200 and read["name"] == "Ada Lovelace", read
                assert read["etag"] and read["etag"].startswith('"'), "the script reads the ETag"
                hit = page.js(f"fetch({json.dumps(api)}).then(r => r.headers.get('X-Cache'))")
                assert hit == "hit", "a cached hit, answered before Flask, is readable too"

                patch = {"Content-Type": "application/merge-patch+json", "If-Match": read["etag"],
                         "Authorization": f"Bearer {key}"}  # fmt: skip
                written = page.js(
                    f"fetch({json.dumps(api)}, {{method: 'PATCH', headers: {json.dumps(patch)},"
                    " body: JSON.stringify({country: 'FR'})})"
                    ".then(async r => ({status: r.status, etag: r.headers.get('ETag'), body: await r.json()}))"
                )
                assert written["status"] == 200, written
                assert written["body"]["country"] == "FR" and written["etag"] not in (None, read["etag"])
                stale = page.js(
                    f"fetch({json.dumps(api)}, {{method: 'PATCH', headers: {json.dumps(patch)},"
                    " body: JSON.stringify({country: 'DE'})}).then(r => r.status)"
                )
                assert stale == 412, "the old ETag is refused, and the script can tell"

                open_page(page, f"{other}/")
                refused = page.js(f"fetch({json.dumps(api)}).then(() => 'read', e => 'refused: ' + e.name)")
                assert refused == "refused: TypeError", "the browser withholds the answer from another origin"
            finally:
                page.close()
