"""What the focused, interleaved benchmarks share (``bench.cache_ratio``, ``bench.auth_ratio``,
``bench.process_model``).

Each compares sides (apps, or requests to one app) in rounds A B A B …, because the machine's speed
drifts (shared/FACTS.md), and reads the median of the per-round ratios. Shared here: the command-line
options and the command's frame (temp dir, Ctrl-C, results JSON), a file of random book ids and wrk
GETs of them, one GET, one measured wrk run (requests/s, latency, CPU per 1,000 requests of the app
and of the services), the printed table, medians and per-round ratios.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.measure import cpu_seconds, versions, wrk
from bench.paths import RESULTS, ROOT, SCRIPTS
from bench.procs import sigterm_as_interrupt
from restengine.ops.dbserver import HOST


def add_options(parser: argparse.ArgumentParser, *, what: str = "pairs") -> None:
    """--quick, --pairs, --duration, --connections, --workers, --threads (see ``resolve``)."""
    parser.add_argument("--quick", action="store_true", help=f"3 {what} of 5 s runs")
    parser.add_argument("--pairs", type=int, help=f"{what} of interleaved runs (default 5; --quick: 3)")
    parser.add_argument("--duration", type=int, help="seconds per wrk run (default 10; --quick: 5)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per app (default 2)")
    parser.add_argument("--threads", type=int, default=8, help="gthread threads per worker (default 8)")


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Fill in the defaults that depend on --quick: 5 rounds of 10 s, or 3 of 5 s."""
    args.pairs = args.pairs or (3 if args.quick else 5)
    args.duration = args.duration or (5 if args.quick else 10)
    if args.pairs < 1 or args.duration < 1 or args.connections < 1:
        raise SystemExit("--pairs, --duration and --connections must be >= 1")
    return args


def run_command(name: str, args: argparse.Namespace, bench: Callable[[argparse.Namespace, Path], dict[str, Any]],
                report: Callable[[dict[str, Any]], None], config: Mapping[str, Any]) -> int:  # fmt: skip
    """Run ``bench(args, tmp)`` in a fresh temp dir, ``report`` its result and write it, with ``config``
    and the machine's versions, to bench/results/<name>-<timestamp>.json. Exit status: 0 when it ran
    (whatever the verdict), 1 on an error, 130 on Ctrl-C or SIGTERM, 2 without wrk. The temp dir (with
    the processes' logs) is kept when the run fails."""
    if shutil.which("wrk") is None:
        print("error: wrk not found: install it (apt-get install wrk, or ./dev setup)", file=sys.stderr)
        return 2
    sigterm_as_interrupt()  # stop everything on SIGTERM as on Ctrl-C
    tmp = Path(tempfile.mkdtemp(prefix="restengine-bench-"))
    started = time.strftime("%Y%m%dT%H%M%S")
    try:
        result = bench(args, tmp)
    except KeyboardInterrupt:
        print(f"interrupted: everything stopped; logs kept in {tmp}/log", file=sys.stderr)
        return 130
    except Exception as exc:
        print(f"error: {exc}; everything stopped; logs kept in {tmp}/log", file=sys.stderr)
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    report(result)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}-{started}.json"
    document = {"started": started, "config": dict(config), "machine": versions(), **result}
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"results: {out.relative_to(ROOT)}")
    return 0


Headers = Mapping[str, str]


def get(conn: http.client.HTTPConnection, path: str, headers: Headers | None = None) -> tuple[int, str | None]:
    """One GET on a kept-alive connection: the status and the X-Cache header."""
    conn.request("GET", path, headers=dict(headers or {}))
    response = conn.getresponse()
    response.read()
    return response.status, response.getheader("X-Cache")


def get_once(port: int, path: str, headers: Headers | None = None) -> tuple[int, str | None]:
    """One GET on a new connection to 127.0.0.1:``port``: the status and the X-Cache header."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        return get(conn, path, headers)
    finally:
        conn.close()


def measured(run_wrk: Callable[[], dict[str, Any]], app_pid: int, meters: Mapping[str, int | None],
             **labels: Any) -> dict[str, Any]:  # fmt: skip
    """One wrk run (``run_wrk()``, ``measure.wrk``'s figures) with the CPU time the app (``app_pid``: the
    gunicorn master and its workers, recycled ones included) spent on it, and each of ``meters`` (name →
    pid; a pid of None counts nothing). Returns ``labels`` + wrk's figures + ``app_cpu_s``,
    ``cpu_ms_per_1k`` (the app's) and ``<name>_cpu_ms_per_1k`` for each meter, ``loadavg_1m``."""
    pids = {name: pid for name, pid in meters.items() if pid}
    before = cpu_seconds(app_pid), {name: cpu_seconds(pid) for name, pid in pids.items()}
    result = run_wrk()
    app_cpu = cpu_seconds(app_pid) - before[0]
    spent = {name: cpu_seconds(pid) - before[1][name] for name, pid in pids.items()}
    per_1k = 1e6 / result["requests"] if result["requests"] else 0.0
    return {**labels, **result, "app_cpu_s": round(app_cpu, 3), "cpu_ms_per_1k": app_cpu * per_1k,
            **{f"{name}_cpu_ms_per_1k": seconds * per_1k for name, seconds in spent.items()},
            "loadavg_1m": os.getloadavg()[0]}  # fmt: skip


class LogLines:
    """Counts the lines of a growing log file that contain ``text``, since the last count."""

    def __init__(self, path: Path, text: str) -> None:
        self.path, self.text = path, text
        self.offset = path.stat().st_size if path.exists() else 0

    def new(self) -> int:
        """How many lines containing ``text`` were written since the last call (or since created)."""
        with self.path.open("rb") as log:
            log.seek(self.offset)
            added = log.read()
        complete = added[: added.rfind(b"\n") + 1]  # a line being written is counted next time
        self.offset += len(complete)
        return complete.count(self.text.encode())


@dataclasses.dataclass(frozen=True)
class Column:
    """One column of the printed table: a run's ``key``, formatted with ``spec`` (None prints "-")."""

    title: str
    key: str
    width: int
    spec: str = ".2f"
    unit: str = ""
    left: bool = False

    def cell(self, text: str) -> str:
        return f"{text:<{self.width}}" if self.left else f"{text:>{self.width}}"

    def value(self, run: Mapping[str, Any]) -> str:
        value = run.get(self.key)
        return self.cell("-" if value is None else format(value, self.spec))


WRK_COLUMNS = (
    Column("req/s", "rps", 9, ".0f"),
    Column("p50 ms", "p50", 8),
    Column("p90 ms", "p90", 8),
    Column("p99 ms", "p99", 8),
    Column("non2xx", "non2xx", 7, "d"),
    Column("errors", "socket_errors", 7, "d"),
    Column("app cpu ms", "cpu_ms_per_1k", 10, ".0f", "per 1k req"),
    Column("redis cpu", "redis_cpu_ms_per_1k", 10, ".0f", "ms/1k req"),
)
LOAD = Column("load", "loadavg_1m", 6)


def header(columns: Sequence[Column]) -> str:
    """The table's two header lines: titles, then units."""
    lines = (" ".join(c.cell(c.title) for c in columns), " ".join(c.cell(c.unit) for c in columns))
    return "\n".join(line.rstrip() for line in lines)


def row(run: Mapping[str, Any], columns: Sequence[Column]) -> str:
    return " ".join(c.value(run) for c in columns)


def by_target(runs: Iterable[Mapping[str, Any]], targets: Sequence[str]) -> dict[str, list[Mapping[str, Any]]]:
    runs = list(runs)
    return {t: [r for r in runs if r["target"] == t] for t in targets}


Run = Mapping[str, Any]


def medians(runs: Iterable[Run], targets: Sequence[str], keys: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per target, the median of each of ``keys`` over its runs (runs without a value skipped)."""
    out: dict[str, dict[str, float]] = {}
    for target, rs in by_target(runs, targets).items():
        values = {k: [r[k] for r in rs if r.get(k) is not None] for k in keys}
        out[target] = {k: statistics.median(v) for k, v in values.items() if v}
    return out


def round_ratios(runs: Iterable[Mapping[str, Any]], side: str, baseline: str, key: str = "rps") -> list[float]:
    """``side``'s ``key`` over ``baseline``'s, round by round (runs in the order they were taken)."""
    sides = by_target(runs, (side, baseline))
    return [a[key] / b[key] for a, b in zip(sides[side], sides[baseline], strict=True)]


def warn_errors(summary: Mapping[str, Any]) -> None:
    """Print a warning when a run had non-2xx answers or socket errors (``summary``'s counts)."""
    if summary["non2xx"] or summary["socket_errors"]:
        print(f"warning: {summary['non2xx']} non-2xx responses, {summary['socket_errors']} socket errors")


RANDOM_IDS_LUA = SCRIPTS / "random_ids.lua"


def book_ids_file(database_uri: str, tmp: Path, count: int) -> tuple[list[str], Path]:
    """``count`` book ids picked at random (the same ones every run), and a file of them for wrk."""
    from pymongo import MongoClient

    client: MongoClient[dict[str, Any]] = MongoClient(database_uri)
    try:
        ids = [str(doc["_id"]) for doc in client.get_default_database()["books"].find({}, {"_id": 1})]
    finally:
        client.close()
    chosen = random.Random(1).sample(ids, min(count, len(ids)))
    path = tmp / "ids.txt"
    path.write_text("\n".join(chosen) + "\n")
    return chosen, path


def wrk_random_ids(port: int, seconds: int, connections: int, ids_file: Path) -> dict[str, Any]:
    """``wrk -t2`` GETs of ``/api/books/<id>``, an id from ``ids_file`` picked at random per request."""
    return wrk(port, "/", connections=connections, seconds=seconds, script=RANDOM_IDS_LUA,
               env={"RANDOM_IDS_FILE": str(ids_file)})  # fmt: skip
