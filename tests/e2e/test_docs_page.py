"""The /docs page in a real browser: headless Chromium renders the app's own OpenAPI document.

The service runs on gunicorn against the real database server. Chromium resolves
no host name but 127.0.0.1 (``--host-resolver-rules``), so a page that needed a
CDN would come out empty; the page's Content-Security-Policy would block one too.
``RESTENGINE_KEEP_SCREENSHOT=1`` also writes the screenshot to docs/img/docs-page.png.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from html.parser import HTMLParser
from pathlib import Path

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


def chromium(url: str, profile: Path, *args: str) -> str:
    """Run headless Chromium on ``url`` (loopback only, no sandbox, no background traffic); its output."""
    assert Path(CHROMIUM).exists(), "chromium is not installed (./dev installs it)"
    argv = [
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
        "--virtual-time-budget=15000",
        *args,
        url,
    ]
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
