"""What the benchmarks share: wrk's output, CPU accounting from /proc, the versions in play."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
LATENCY = re.compile(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.M)  # "     99%    5.12ms"


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
    }


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


def versions() -> dict[str, str]:
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
