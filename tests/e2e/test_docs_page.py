"""The /docs page in a real browser: headless Chromium renders the app's own OpenAPI document.

The service runs on gunicorn against the real database server. Chromium resolves
no host name but 127.0.0.1 (``--host-resolver-rules``), so a page that needed a
CDN would come out empty; the page's Content-Security-Policy would block one too.
``RESTENGINE_KEEP_SCREENSHOT=1`` also writes the screenshot to docs/img/docs-page.png.

The second test clicks through the page as a user would, with access control on:
Swagger UI's "Authorize" with an admin API key, then "Try it out" on a write. It
drives Chromium over the DevTools protocol on a pipe (``--remote-debugging-pipe``),
so it needs no port, no WebSocket library and no browser-automation package.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from restengine.auth.keys import COLLECTION, KeyStore
from tests.e2e.browser import DevTools, chromium_argv
from tests.e2e.helpers import ROOT, get, gunicorn

SCREENSHOT = ROOT / "docs" / "img" / "docs-page.png"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Rendered(HTMLParser):
    """What Swagger UI drew: its tag sections and the paths of its operation blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.paths: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if "opblock-tag" in (found.get("class") or "").split() and found.get("data-tag"):
            self.tags.add(str(found["data-tag"]))
        if "opblock-summary-path" in (found.get("class") or "").split() and found.get("data-path"):
            self.paths.add(str(found["data-path"]))


def chromium(url: str, profile: Path, *args: str) -> str:
    """Run headless Chromium on ``url``; its output."""
    argv = [*chromium_argv(profile), "--virtual-time-budget=15000", *args, url]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    assert proc.returncode == 0, err[-3000:]
    return out


def page_requests(net_log: Path, origin: str) -> list[str]:
    """The URLs the page itself asked for, from Chromium's NetLog (the browser's own traffic left out)."""
    log = json.loads(net_log.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        event["params"]["url"]
        for event in log["events"]
        if event["type"] == start and event.get("params", {}).get("initiator") == origin
    ]


def test_docs_page_renders_the_resources_in_chromium(tmp_path: Path, mongodb_uri: str) -> None:
    env = {"MONGODB_URI": mongodb_uri, "RESTENGINE_DOCUMENTS": "restengine.demo.bookstore"}
    with gunicorn(tmp_path, env, app="restengine.wsgi:app") as (port, _log):
        status, headers, _ = get(port, "/docs")
        assert status == 200 and "script-src 'self'" in headers["content-security-policy"]
        status, _, body = get(port, "/openapi.json")
        assert status == 200
        spec = json.loads(body)

        origin = f"http://127.0.0.1:{port}"
        net_log = tmp_path / "netlog.json"
        dom = chromium(f"{origin}/docs", tmp_path / "profile-dom", f"--log-net-log={net_log}", "--dump-dom")
        shot = tmp_path / "docs-page.png"
        chromium(f"{origin}/docs", tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1280,1600")

    rendered = Rendered()
    rendered.feed(dom)
    assert {"books", "author"} <= rendered.tags, dom[-2000:]  # the demo's collections
    assert {"/api/books", "/api/books/{id}", "/api/author/{id}"} <= rendered.paths
    assert rendered.tags == {tag["name"] for tag in spec["tags"]}, "every tag of the app's OpenAPI document"
    assert rendered.paths == set(spec["paths"]), "and every path"
    requested = page_requests(net_log, origin)
    assert any("/openapi.json" in url for url in requested) and any("swagger-ui-bundle.js" in url for url in requested)
    assert [url for url in requested if not url.startswith(f"{origin}/")] == [], "nothing but the app itself"

    png = shot.read_bytes()
    assert png.startswith(PNG_SIGNATURE) and len(png) > 30_000, "a real rendering, not a blank page"
    if os.environ.get("RESTENGINE_KEEP_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)


# The POST /api/author block of Swagger UI, and its parts.
BLOCK = (
    "[...document.querySelectorAll('.opblock.opblock-post')]"
    ".find(b => b.querySelector('.opblock-summary-path')?.dataset.path === '/api/author')"
)
LIVE_STATUS = f"{BLOCK}?.querySelector('.live-responses-table .response .response-col_status')?.textContent.trim()"
MODAL = "document.querySelector('.dialog-ux .modal-ux')"
AUTHORIZE = "document.querySelector('.auth-wrapper .btn.authorize')"


def execute(page: DevTools) -> tuple[int, str]:
    """Run the expanded operation with "Execute" (the last response cleared first): its status and curl command."""
    page.js(f"{BLOCK}.querySelector('.btn-clear')?.click()")
    page.wait(f"!{BLOCK}.querySelector('.live-responses-table')", "the last response to be cleared")
    page.js(f"{BLOCK}.querySelector('.btn.execute').click()")
    status = page.wait(LIVE_STATUS, "a response in the page")
    assert re.match(r"^\d{3}", status), status
    curl = page.js(f"{BLOCK}.querySelector('.curl-command')?.textContent") or ""
    return int(status[:3]), curl


def authorize_dialog(page: DevTools) -> None:
    page.js(f"{AUTHORIZE}.click()")
    page.wait(f"{MODAL}?.textContent.includes('(http, Bearer)')", "the Authorize dialog with the bearer scheme")


def close_dialog(page: DevTools) -> None:
    page.js(f"{MODAL}.querySelector('.btn-done').click()")
    page.wait(f"!{MODAL}", "the dialog to close")


def test_authorize_then_try_it_out_writes_through_the_docs_page(tmp_path: Path, mongodb_uri: str) -> None:
    env = {"MONGODB_URI": mongodb_uri, "RESTENGINE_DOCUMENTS": "restengine.demo.bookstore", "RESTENGINE_AUTH": "on"}
    client: MongoClient[dict[str, Any]] = MongoClient(mongodb_uri, serverSelectionTimeoutMS=10_000)
    with client:
        _, key = KeyStore(lambda: client.get_default_database()[COLLECTION]).create("admin", name="docs-page")
    body = {"name": "Ursula K. Le Guin", "country": "US"}
    with gunicorn(tmp_path, env, app="restengine.wsgi:app") as (port, _log):
        status, _, raw = get(port, "/openapi.json")
        assert status == 200
        spec = json.loads(raw)
        bearer = spec["components"]["securitySchemes"]["bearer"]
        assert (bearer["type"], bearer["scheme"]) == ("http", "bearer")
        assert spec["paths"]["/api/author"]["post"]["security"] == [{}, {"bearer": []}]

        page = DevTools(tmp_path / "profile-cdp", tmp_path / "chromium.log")
        try:
            navigated = page.call("Page.navigate", url=f"http://127.0.0.1:{port}/docs")
            assert "errorText" not in navigated, navigated
            page.wait(f"{AUTHORIZE} && {BLOCK}", "Swagger UI with its Authorize button and POST /api/author", 30)
            assert "unlocked" in page.js(f"{AUTHORIZE}.className")

            page.js(f"{BLOCK}.querySelector('.opblock-summary-control').click()")
            page.wait(f"{BLOCK}.querySelector('.try-out__btn')", "Try it out")
            page.js(f"{BLOCK}.querySelector('.try-out__btn').click()")
            page.wait(f"{BLOCK}.querySelector('textarea.body-param__text')", "the request body editor")
            page.type_into(".opblock.is-open textarea.body-param__text", json.dumps(body))

            status, curl = execute(page)
            assert status == 401, ("a write without credentials", status, curl)
            assert "Authorization" not in curl and json.dumps(body) in curl, "the typed body, no credentials"

            authorize_dialog(page)
            page.type_into("#auth-bearer-value", key)
            page.js(f"{MODAL}.querySelector('.btn.modal-btn.auth.authorize').click()")
            page.wait(
                f"[...{MODAL}.querySelectorAll('.btn.modal-btn.auth')].some(b => b.textContent === 'Logout')",
                "the dialog to show the scheme authorized",
            )
            close_dialog(page)
            assert "locked" in page.js(f"{AUTHORIZE}.className").split()

            status, curl = execute(page)
            assert status == 201, (status, curl)
            assert f"Authorization: Bearer {key}" in curl, "Swagger UI sent the key"
            page.wait(
                f"{BLOCK}.querySelector('.live-responses-table .response .response-col_description')"
                f".textContent.includes({json.dumps(body['name'])})",
                "the created author in the page",
            )

            authorize_dialog(page)
            page.js(
                f"[...{MODAL}.querySelectorAll('.btn.modal-btn.auth')].find(b => b.textContent === 'Logout').click()"
            )
            page.wait(f"{MODAL}.querySelector('#auth-bearer-value')", "the dialog to ask for a key again")
            close_dialog(page)
            assert "unlocked" in page.js(f"{AUTHORIZE}.className").split()

            status, curl = execute(page)
            assert status == 401 and "Authorization" not in curl, ("logged out: no credentials again", status, curl)
        finally:
            page.close()

        status, _, raw = get(port, "/api/author")
        assert status == 200
        assert [item["name"] for item in json.loads(raw)["items"]] == [body["name"]], "the one authorized write"
