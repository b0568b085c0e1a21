"""Smoke test of the REST API through real gunicorn workers on the real database server."""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from urllib.parse import urlsplit

from restengine.constants import DRAIN_LIMIT
from tests.e2e.helpers import call, gunicorn
from tests.keys import TEST_SECRET

APP = "restengine.wsgi:app"
DOCUMENTS = "restengine.demo.bookstore,tests.legacy_models"


def relative(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def test_crud_filters_and_cursor_walk_through_gunicorn(tmp_path: Path, mongodb_uri: str) -> None:
    env = {"MONGODB_URI": mongodb_uri, "RESTENGINE_DOCUMENTS": DOCUMENTS, "RESTENGINE_SECRET_KEY": TEST_SECRET}
    with gunicorn(tmp_path, env, app=APP) as (port, log):
        first = {"code": "GUN001", "name": "Gun One", "email": "gun1@example.com", "tags": ["e2e"]}
        status, headers, body = call(port, "POST", "/api/customers", first)
        assert status == 201, body
        assert headers["location"].endswith("/api/customers/GUN001") and body["id"] == "GUN001"
        others = [
            {"code": f"GUN00{i}", "name": f"Gun {name}", "email": f"gun{i}@example.com"}
            for i, name in [(2, "Two"), (3, "Three"), (4, "Four")]
        ]
        status, _, body = call(port, "POST", "/api/customers", others)
        assert status == 201 and len(body["items"]) == 3, body
        status, _, body = call(port, "POST", "/api/customers", {"code": "OTH001", "name": "Other"})
        assert status == 201, body

        status, headers, body = call(port, "GET", "/api/customers/GUN001")
        assert status == 200 and body["name"] == "Gun One" and body["tags"] == ["e2e"]
        assert "x-cache" not in headers, "no Redis and 2 workers: a per-process cache would go stale"
        etag = headers["etag"]

        status, _, page = call(port, "GET", "/api/customers?name__startswith=Gun&sort=name&limit=2")
        assert status == 200 and len(page["items"]) == 2 and page["next"], page
        status, _, second = call(port, "GET", relative(page["next"]))
        assert status == 200 and second["next"] is None, second
        walked = [item["id"] for item in page["items"] + second["items"]]
        assert walked == ["GUN004", "GUN001", "GUN003", "GUN002"], "Four, One, Three, Two"

        patch_headers = {"Content-Type": "application/merge-patch+json", "If-Match": etag}
        status, headers, body = call(port, "PATCH", "/api/customers/GUN001", {"name": "Gun Uno"}, patch_headers)
        assert status == 200 and body["name"] == "Gun Uno", body
        assert headers["etag"] != etag
        status, headers, body = call(port, "PATCH", "/api/customers/GUN001", {"name": "Late"}, patch_headers)
        assert status == 412 and headers["content-type"] == "application/problem+json", body

        status, _, body = call(port, "DELETE", "/api/customers/GUN001")
        assert status == 204 and body is None
        status, headers, _ = call(port, "GET", "/api/customers/GUN001")
        assert status == 404 and headers["content-type"] == "application/problem+json"
    assert "Traceback" not in log.read_text()
    assert "the response cache is off (2 worker processes would go stale)" in log.read_text()


def _urls(port: int, headers: dict[str, str], n: int) -> list[str]:
    """Every absolute URL the API answers with: Location, Link, next, the index's resource URLs."""
    other = {"code": f"OTH{n:03d}", "name": "Other", "email": f"other{n}@example.com"}
    assert call(port, "POST", "/api/customers", other)[0] == 201, "so that a first page has a next one"
    new = {"code": f"FWD{n:03d}", "name": "Fwd", "email": f"fwd{n}@example.com"}
    status, created, body = call(port, "POST", "/api/customers", new, headers)
    assert status == 201, body
    status, listed, page = call(port, "GET", "/api/customers?limit=1", headers=headers)
    assert status == 200 and page["next"], page
    status, _, index = call(port, "GET", "/api/", headers=headers)
    assert status == 200, index
    link = listed["link"]
    return [created["location"], link[1 : link.index(">")], page["next"]] + [r["url"] for r in index["resources"]]


def test_without_proxies_a_forwarded_scheme_from_loopback_changes_no_url(tmp_path: Path, mongodb_uri: str) -> None:
    """gunicorn trusts X-Forwarded-* from 127.0.0.1 by default; with RESTENGINE_PROXY_COUNT=0 it must not."""
    env = {"MONGODB_URI": mongodb_uri, "RESTENGINE_DOCUMENTS": DOCUMENTS, "RESTENGINE_PROXY_COUNT": "0"}
    with gunicorn(tmp_path, env, app=APP) as (port, _):
        spoofed = {"X-Forwarded-Proto": "https", "X-Forwarded-Ssl": "on", "X-Forwarded-Protocol": "ssl"}
        urls = _urls(port, spoofed, 1)
    assert urls and all(url.startswith(f"http://127.0.0.1:{port}/") for url in urls), urls


def test_behind_one_proxy_only_its_forwarded_proto_sets_the_scheme(tmp_path: Path, mongodb_uri: str) -> None:
    env = {"MONGODB_URI": mongodb_uri, "RESTENGINE_DOCUMENTS": DOCUMENTS, "RESTENGINE_PROXY_COUNT": "1"}
    with gunicorn(tmp_path, env, app=APP) as (port, _):
        https = _urls(port, {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example"}, 1)
        # What a client may add through nginx, which overwrites X-Forwarded-Proto only: no scheme, and no 400.
        added = {"X-Forwarded-Proto": "http", "X-Forwarded-Ssl": "on", "X-Forwarded-Host": "api.example"}
        plain = _urls(port, added, 2)
    assert all(url.startswith("https://api.example/") for url in https), https
    assert all(url.startswith("http://api.example/") for url in plain), plain


def test_a_413_closes_the_connection_it_left_a_body_unread_on(tmp_path: Path, mongodb_uri: str) -> None:
    env = {"MONGODB_URI": mongodb_uri, "RESTENGINE_DOCUMENTS": DOCUMENTS, "RESTENGINE_SECRET_KEY": TEST_SECRET}
    oversized = b'{"code": "BIG001", "name": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    with gunicorn(tmp_path, env, app=APP) as (port, log):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("POST", "/api/customers", body=oversized, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            assert response.status == 413 and response.getheader("Content-Type") == "application/problem+json"
            assert json.loads(response.read())["status"] == 413
            # The next request on this connection is answered (gunicorn drops an application's Connection header:
            # the body is drained rather than the connection closed).
            conn.request("GET", "/api/customers/BIG001")
            response = conn.getresponse()
            assert response.status == 404 and json.loads(response.read())["status"] == 404
        finally:
            conn.close()
    assert "Traceback" not in log.read_text()


def test_a_413_for_a_body_too_large_to_drain_closes_its_connection(tmp_path: Path, mongodb_uri: str) -> None:
    env = {"MONGODB_URI": mongodb_uri, "RESTENGINE_DOCUMENTS": DOCUMENTS, "RESTENGINE_SECRET_KEY": TEST_SECRET}
    announced = DRAIN_LIMIT + 1
    with gunicorn(tmp_path, env, app=APP) as (port, log), socket.create_connection(("127.0.0.1", port), 10) as sock:
        head = (
            f"POST /api/customers HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {announced}\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"code": "BIG002", "name": "' + b"x" * 65536)
        received = b""
        while chunk := sock.recv(65536):  # the server closes the connection after answering
            received += chunk
        status_line, _, rest = received.partition(b"\r\n")
        headers = rest.split(b"\r\n\r\n")[0].lower()
        assert status_line.startswith(b"HTTP/1.1 413"), received[:300]
        assert b"connection: close" in headers, headers
    assert "Traceback" not in log.read_text()
