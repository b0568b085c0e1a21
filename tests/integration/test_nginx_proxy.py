"""nginx in front of the app: the rendered config passes ``nginx -t`` and proxies the way the app expects.

These run the real nginx binary from a config rendered from the packaged
template, in front of two tiny HTTP/1.1 servers standing in for the gunicorn
instances. (Rendering alone is checked in tests/unit/test_nginx_conf.py.)
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from restengine.ops import nginx as nginx_conf
from restengine.ops.processes import free_port, port_open

DROP = -1  # an upstream "status" meaning: read the request, close the connection, answer nothing
ONE_MIB = 1024 * 1024
WAIT = 10.0  # upper bound on every wait in this file, in seconds


# -- the stand-in upstream -----------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like gunicorn
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        upstream = self.server.upstream
        upstream.record(self.command, self.client_address[1])
        status = upstream.statuses.get(self.command, 200)
        if status == DROP:
            self.close_connection = True
            return
        payload = json.dumps(
            {
                "name": upstream.name,
                "method": self.command,
                "body_length": len(body),
                "headers": {
                    name: self.headers.get(name)
                    for name in (
                        "Host",
                        "Connection",
                        "X-Request-ID",
                        "X-Forwarded-For",
                        "X-Forwarded-Proto",
                        "X-Forwarded-Host",
                        "X-Forwarded-Port",
                    )
                },
            }
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        # Like the app, which echoes the id it used.
        self.send_header("X-Request-ID", self.headers.get("X-Request-ID") or "set-by-upstream")
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = _answer


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", upstream.port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # connections cut by stop() or by nginx are expected here


@dataclass
class Upstream:
    """One stand-in gunicorn instance on a free loopback port."""

    name: str
    port: int = field(default_factory=free_port)
    statuses: dict[str, int] = field(default_factory=dict)  # method -> status, or DROP
    requests: list[tuple[str, int]] = field(default_factory=list)  # (method, client port)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: _Server | None = None
    _thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def record(self, method: str, client_port: int) -> None:
        with self._lock:
            self.requests.append((method, client_port))

    def count(self, method: str) -> int:
        with self._lock:
            return sum(1 for m, _ in self.requests if m == method)

    def start(self) -> None:
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening and cut every open connection, as if the instance died."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with server.connections_lock:
            open_connections = list(server.connections)
        for conn in open_connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(WAIT)


# -- running nginx ------------------------------------------------------------------------


def _nginx_binary() -> str:
    binary = shutil.which("nginx")
    if binary is None:
        pytest.fail("nginx is not on PATH: the test machine is set up wrong (apt-get install nginx-light)")
    return binary


def _render_local(tmp_path: Path, port: int, upstreams: list[Upstream]) -> tuple[Path, Path]:
    run_dir = tmp_path / "nginx"
    conf = nginx_conf.write_config(
        tmp_path / "nginx.conf",
        listen=f"127.0.0.1:{port}",
        upstreams=[u.address for u in upstreams],
        server_names=["localhost", "127.0.0.1"],
        run_dir=run_dir,
        access_log=str(run_dir / "access.log"),
        error_log=str(run_dir / "error.log"),
    )
    return conf, run_dir


def _stop_nginx(proc: subprocess.Popen[bytes]) -> None:
    """SIGQUIT (graceful), bounded wait, then SIGKILL to nginx's process group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: master and workers
            proc.wait(WAIT)


@dataclass
class Stack:
    port: int
    a: Upstream
    b: Upstream
    run_dir: Path

    @property
    def upstreams(self) -> tuple[Upstream, Upstream]:
        return (self.a, self.b)

    def log(self, name: str) -> str:
        path = self.run_dir / name
        return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    binary = _nginx_binary()
    a, b = Upstream("a"), Upstream("b")
    a.start()
    b.start()
    port = free_port()
    conf, run_dir = _render_local(tmp_path, port, [a, b])
    with open(tmp_path / "nginx.out", "wb") as out:
        proc = subprocess.Popen(
            [binary, "-c", str(conf), "-p", str(run_dir), "-g", "daemon off;"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + WAIT
        while not port_open("127.0.0.1", port):
            if proc.poll() is not None or time.monotonic() > deadline:
                output = (tmp_path / "nginx.out").read_text(errors="replace")
                pytest.fail(f"nginx did not start listening on {port}: {output}")
            time.sleep(0.05)
        yield Stack(port, a, b, run_dir)
    finally:
        _stop_nginx(proc)
        a.stop()
        b.stop()


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: dict[str, Any] | None


def _request(
    port: int,
    method: str = "GET",
    *,
    host: str = "localhost",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> Reply:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    try:
        conn.request(method, "/books", body=body, headers={"Host": host, **(headers or {})})
        response = conn.getresponse()
        raw = response.read()
        is_json = response.getheader("Content-Type", "").startswith("application/json")
        return Reply(response.status, response.headers, json.loads(raw) if is_json and raw else None)
    finally:
        conn.close()


def _served_by(reply: Reply) -> str:
    assert reply.status == 200, reply
    assert reply.body is not None
    return str(reply.body["name"])


# -- the rendered file, checked by nginx ----------------------------------------------------


def test_rendered_local_config_passes_nginx_t(tmp_path: Path) -> None:
    binary = _nginx_binary()
    conf, run_dir = _render_local(tmp_path, free_port(), [Upstream("a"), Upstream("b")])
    result = subprocess.run(
        [binary, "-t", "-c", str(conf), "-p", str(run_dir), "-g", "daemon off;"],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert result.returncode == 0, result.stderr
    for name in nginx_conf.TEMP_DIRS:
        assert (run_dir / name).is_dir()


# -- nginx running in front of two upstreams ----------------------------------------------


def test_requests_are_spread_over_both_upstreams_on_reused_connections(stack: Stack) -> None:
    served = [_served_by(_request(stack.port)) for _ in range(20)]
    assert set(served) == {"a", "b"}
    # Upstream keep-alive works: far fewer upstream connections than requests.
    connections = {(u.name, port) for u in stack.upstreams for _, port in u.requests}
    assert len(connections) < 10, connections


def test_forwarded_headers_are_set(stack: Stack) -> None:
    reply = _request(stack.port, host=f"localhost:{stack.port}", headers={"X-Forwarded-For": "203.0.113.7"})
    assert reply.status == 200 and reply.body is not None
    seen = reply.body["headers"]
    assert seen["X-Forwarded-For"] == "203.0.113.7, 127.0.0.1"  # the app trusts only the last hop
    assert seen["X-Forwarded-Proto"] == "http"
    assert seen["Host"] == "localhost"
    assert seen["X-Forwarded-Host"] == "localhost"
    assert seen["X-Forwarded-Port"] == str(stack.port)
    assert seen["Connection"] is None  # no "close": the upstream connection stays open


def test_request_id_is_generated_when_absent(stack: Stack) -> None:
    reply = _request(stack.port)
    assert reply.body is not None
    returned = reply.headers.get_all("X-Request-ID")
    assert returned is not None and len(returned) == 1, returned  # nginx's, not also the upstream's
    assert re.fullmatch(r"[0-9a-f]{32}", returned[0])
    assert reply.body["headers"]["X-Request-ID"] == returned[0]
    # nginx writes the log line after the response has gone out.
    deadline = time.monotonic() + WAIT
    while f"rid={returned[0]}" not in stack.log("access.log"):
        assert time.monotonic() < deadline, stack.log("access.log")
        time.sleep(0.02)


def test_request_id_is_passed_on_unchanged(stack: Stack) -> None:
    reply = _request(stack.port, headers={"X-Request-ID": "client-id_1.2:3"})
    assert reply.body is not None
    assert reply.body["headers"]["X-Request-ID"] == "client-id_1.2:3"
    assert reply.headers.get_all("X-Request-ID") == ["client-id_1.2:3"]


@pytest.mark.parametrize("bad", ["has space", "x" * 129, 'quote"d'])
def test_request_id_the_app_would_reject_is_replaced(stack: Stack, bad: str) -> None:
    reply = _request(stack.port, headers={"X-Request-ID": bad})
    assert reply.body is not None
    generated = reply.body["headers"]["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert reply.headers.get_all("X-Request-ID") == [generated]


def test_unknown_host_gets_no_response(stack: Stack) -> None:
    def raw_get(host: str) -> bytes:
        with socket.create_connection(("127.0.0.1", stack.port), timeout=WAIT) as sock:
            sock.sendall(f"GET /books HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            received = b""
            try:
                while chunk := sock.recv(65536):
                    received += chunk
            except ConnectionResetError:
                pass
            return received

    assert raw_get("localhost").startswith(b"HTTP/1.1 200 ")  # the probe itself works
    assert raw_get("attacker.example") == b""
    assert sum(len(u.requests) for u in stack.upstreams) == 1


def test_get_is_retried_when_an_upstream_is_down(stack: Stack) -> None:
    stack.b.stop()
    served = [_served_by(_request(stack.port)) for _ in range(8)]
    assert served == ["a"] * 8


def test_get_is_retried_when_an_upstream_drops_the_connection(stack: Stack) -> None:
    stack.a.statuses["GET"] = DROP
    served = [_served_by(_request(stack.port)) for _ in range(6)]
    assert served == ["b"] * 6
    assert stack.a.count("GET") >= 1  # it was tried, and failed over


def test_post_is_not_replayed_after_it_was_sent(stack: Stack) -> None:
    for upstream in stack.upstreams:
        upstream.statuses["POST"] = DROP
    reply = _request(stack.port, "POST", body=b'{"title": "once"}', headers={"Content-Type": "application/json"})
    assert reply.status == 502
    assert reply.headers.get("X-Request-ID")
    # Sent to exactly one upstream, exactly once: a retry could have created the book twice.
    assert [u.count("POST") for u in stack.upstreams] in ([1, 0], [0, 1])


def test_post_is_retried_when_it_never_reached_the_upstream(stack: Stack) -> None:
    stack.b.stop()  # connection refused: nothing was sent, so trying the other one is safe
    replies = [_request(stack.port, "POST", body=b"{}") for _ in range(4)]
    assert [_served_by(r) for r in replies] == ["a"] * 4
    assert stack.a.count("POST") == 4


def test_503_is_passed_through_not_retried(stack: Stack) -> None:
    stack.a.statuses["GET"] = 503  # "database down": the other instance would say the same
    statuses = [_request(stack.port).status for _ in range(6)]
    assert 503 in statuses and 200 in statuses
    assert stack.a.count("GET") + stack.b.count("GET") == 6  # one upstream try per request


def test_body_limit_is_one_mebibyte(stack: Stack) -> None:
    accepted = _request(stack.port, "PUT", body=b"x" * ONE_MIB)
    assert accepted.status == 200 and accepted.body is not None
    assert accepted.body["body_length"] == ONE_MIB

    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=WAIT)
    try:
        conn.putrequest("PUT", "/books", skip_host=True)
        conn.putheader("Host", "localhost")
        conn.putheader("Content-Length", str(ONE_MIB + 1))
        conn.endheaders()  # nginx answers from the header alone
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    assert response.status == 413
    assert response.getheader("X-Request-ID")
    assert stack.a.count("PUT") + stack.b.count("PUT") == 1
