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

import fcntl
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from restengine.auth.keys import COLLECTION, KeyStore
from tests.e2e.helpers import ROOT, get, gunicorn

CHROMIUM = "/usr/bin/chromium"
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


def chromium_argv(profile: Path) -> list[str]:
    """Headless Chromium: loopback only, no sandbox, no background traffic, its own profile."""
    assert Path(CHROMIUM).exists(), "chromium is not installed (./dev installs it)"
    return [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--user-data-dir={profile}",
    ]


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


class PageError(AssertionError):
    """A DevTools command failed, or an expression threw in the page."""


class DevTools:
    """One headless Chromium page driven over the DevTools protocol on a pipe.

    With ``--remote-debugging-pipe`` Chromium reads commands from its fd 3 and writes answers and events
    to its fd 4, each a JSON message ended by a NUL byte. Every call is bounded by ``timeout`` seconds;
    ``close`` stops the browser (its whole process group if it does not quit).
    """

    def __init__(self, profile: Path, log: Path, timeout: float = 15.0) -> None:
        self.timeout = timeout
        to_browser, from_browser = os.pipe(), os.pipe()
        # Far from 3 and 4, so bash's redirections cannot overwrite one with the other (dash takes no fd over 9).
        theirs = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_browser[0], from_browser[1])]
        for fd in (to_browser[0], from_browser[1]):
            os.close(fd)
        self._out, self._in = to_browser[1], from_browser[0]
        script = f'exec "$0" "$@" 3<&{theirs[0]} 4>&{theirs[1]} {theirs[0]}<&- {theirs[1]}>&-'
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(
                ["/bin/bash", "-c", script, *chromium_argv(profile), "--remote-debugging-pipe", "about:blank"],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=subprocess.STDOUT,
                pass_fds=theirs,
                start_new_session=True,
            )
        for fd in theirs:
            os.close(fd)
        self._messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._ids = 0
        self._session: str | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            target = self.call("Target.createTarget", url="about:blank")["targetId"]
            self._session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        except BaseException:
            self.close()
            raise

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self._in, 65536):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for message in messages:
                self._messages.put(json.loads(message))
        self._messages.put(None)  # the browser went away

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command (to the page once attached) and return its result."""
        self._ids += 1
        message: dict[str, Any] = {"id": self._ids, "method": method, "params": params}
        if self._session:
            message["sessionId"] = self._session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                answer = self._messages.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"chromium did not answer {method} within {self.timeout:.0f}s") from None
            assert answer is not None, f"chromium exited ({self.proc.poll()}) during {method}"
            if answer.get("id") == self._ids:
                if "error" in answer:
                    raise PageError(f"{method}: {answer['error']}")
                result: dict[str, Any] = answer["result"]
                return result

    def js(self, expression: str) -> Any:
        """Evaluate ``expression`` in the page; its JSON value (an exception in the page fails the test)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise PageError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait(self, expression: str, what: str, seconds: float | None = None) -> Any:
        """Poll ``expression`` until it is truthy; its value (``True`` for an element).

        An expression that throws (the element not drawn yet) or a page between documents counts as not yet.
        """
        deadline = time.monotonic() + (seconds or self.timeout)
        last: PageError | None = None
        while time.monotonic() < deadline:
            try:
                if value := self.js(f"(v => v instanceof Node || v)({expression})"):
                    return value
            except PageError as error:
                last = error
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}" + (f" (last: {last})" if last else ""))

    def type_into(self, selector: str, text: str) -> None:
        """Replace the text of the input matching ``selector`` as typing would (React sees the input event)."""
        assert self.js(
            f"(e => !!e && (e.focus(), e.select(), document.activeElement === e))"
            f"(document.querySelector({json.dumps(selector)}))"
        ), selector
        self.call("Input.insertText", text=text)

    def close(self) -> None:
        try:
            self._session = None
            self.call("Browser.close")
        except (AssertionError, OSError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        finally:
            os.close(self._out)
            self._reader.join(5)  # the pipe's writer is gone with the browser: the reader sees its end
            if not self._reader.is_alive():
                os.close(self._in)


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
