"""Headless Chromium for the browser tests: its command line, and one page driven over the DevTools protocol."""

from __future__ import annotations

import fcntl
import json
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"


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
