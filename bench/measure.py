"""The meters both benchmarks read: wrk (run and parsed), CPU time from /proc, the versions in play."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from restengine.ops.dbserver import HOST

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
LATENCY = re.compile(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.M)  # "     99%    5.12ms"
IDLE_SAMPLE = 0.1  # seconds between two CPU readings in ``wait_idle``: it runs before every wrk run


def parse_wrk(text: str) -> dict[str, Any]:
    """Requests/s, latency percentiles (ms), request count, non-2xx and socket errors from wrk's output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    if not rps or not total:
        raise RuntimeError(f"could not parse wrk output:\n{text}")
    latency = {f"p{p}": float(v) * UNITS[u] for p, v, u in LATENCY.findall(text)}
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return {
        "rps": float(rps.group(1)),
        "requests": int(total.group(1)),
        **{k: latency.get(k) for k in ("p50", "p90", "p99")},
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(map(int, sock.groups())) if sock else 0,
        "socket_error_kinds": dict(zip(("connect", "read", "write", "timeout"), map(int, sock.groups()), strict=True))
        if sock
        else {},
    }


def wrk(port: int, path: str = "", *, connections: int, seconds: int, threads: int = 2,
        script: Path | None = None, env: Mapping[str, str] | None = None,
        timeout: str | None = None, headers: Iterable[str] = ()) -> dict[str, Any]:  # fmt: skip
    """Run ``wrk --latency`` against ``http://127.0.0.1:<port><path>`` and return ``parse_wrk``'s figures.

    ``script`` is a Lua script, configured through ``env`` (added to this process's environment);
    ``timeout`` is wrk's own per-request ``--timeout`` (e.g. ``"5s"``); ``headers`` are sent with every
    request (``"Name: value"``, wrk's ``-H``). Raises RuntimeError when wrk fails; the whole run is
    bounded by ``seconds`` + 30.
    """
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for header in headers:
        argv += ["-H", header]
    if timeout is not None:
        argv += ["--timeout", timeout]
    if script is not None:
        argv += ["-s", str(script)]
    done = subprocess.run([*argv, f"http://{HOST}:{port}{path}"], env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=seconds + 30, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


def cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and its children, living or reaped (utime+stime+cutime+cstime)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):  # fields[1] is the parent pid
            total += sum(int(f) for f in fields[11:15])
    return total / os.sysconf("SC_CLK_TCK")


def total_cpu_seconds(pids: Iterable[int | None]) -> float:
    """``cpu_seconds`` summed over ``pids``; a process not started (None) counts nothing."""
    return sum(cpu_seconds(pid) for pid in pids if pid)


def wait_idle(pids: Iterable[int | None], idle: float = 0.25, cap: float = 5.0) -> bool:
    """Wait until ``pids`` use less than ``idle`` of a core, at most ``cap`` seconds; whether they did.

    A database that queues queries (SecantusDB runs them one at a time) keeps working through
    the backlog of the last run after wrk stops; the next run must not start inside it. Working
    through a backlog keeps the database or the app near a full core; idle, they tick a few ms.
    """
    pids = list(pids)
    deadline = time.monotonic() + cap
    while time.monotonic() < deadline:
        before = total_cpu_seconds(pids)
        time.sleep(IDLE_SAMPLE)
        if total_cpu_seconds(pids) - before < idle * IDLE_SAMPLE:
            return True
    return False


def versions() -> dict[str, str]:
    """The machine and the versions of everything measured, for the raw results."""

    def out(*argv: str) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "?"

    cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu.group(1) if cpu else "?",
        "python": platform.python_version(),
        "gunicorn": importlib.metadata.version("gunicorn"),
        "flask": importlib.metadata.version("flask"),
        "SecantusDB": importlib.metadata.version("SecantusDB"),
        "redis-server": out("redis-server", "--version"),
        "wrk": out("wrk", "--version"),
    }
