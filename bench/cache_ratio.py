"""How close a cached item GET comes to an empty Flask endpoint, on the same gunicorn config.

    .venv/bin/python -m bench.cache_ratio [--quick] [--pairs N] [--duration S] [--connections C]
                                          [--workers W] [--threads T]

Starts, on free loopback ports in a temp dir: the embedded database, a redis-server, the demo
bookstore with 2,000 books, then two gunicorn instances with gunicorn.conf.py: (A) RestEngine and
(B) bench.peers.empty_app. Warms A's cache for 200 book ids, checks they are hits, then runs
``wrk -t2 -c<C> --latency`` against A (random ids, bench/wrk/random_ids.lua) and B (/empty),
interleaved A B A B for --pairs pairs, since the machine's speed drifts. Prints every run, the
medians and the median of the per-pair ratios A/B (goal >= 0.80: a report, not an assertion),
and writes the raw figures to bench/results/cache_ratio-<timestamp>.json. Needs ``wrk``.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
from pathlib import Path
from typing import Any

from bench.interleaved import (
    LOAD,
    WRK_COLUMNS,
    Column,
    add_options,
    book_ids_file,
    get,
    header,
    measured,
    medians,
    resolve,
    round_ratios,
    row,
    run_command,
    warn_errors,
    wrk_random_ids,
)
from bench.measure import wrk
from bench.procs import Harness, gunicorn_app
from restengine.ops.dbserver import HOST
from restengine.ops.processes import Managed, free_port

GOAL = 0.80
BOOKS, IDS = 2000, 200
TARGETS = ("cached", "empty")
COLUMNS = (Column("pair", "pair", 4, "d"), Column("target", "target", 6, "s", left=True), *WRK_COLUMNS, LOAD)


def run_wrk(port: int, path: str, seconds: int, connections: int, ids_file: Path | None = None) -> dict[str, Any]:
    """``wrk -t2`` against ``path``, or with ``ids_file``: GETs of random book ids from that file."""
    if ids_file is None:
        return wrk(port, path, connections=connections, seconds=seconds)
    return wrk_random_ids(port, seconds, connections, ids_file)


def cache_hits(port: int, ids: list[str]) -> int:
    """GET every id once (fills the cache on a miss); how many answers were hits."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        results = [get(conn, f"/api/books/{i}") for i in ids]
    finally:
        conn.close()
    bad = [status for status, _ in results if status != 200]
    if bad:
        raise RuntimeError(f"{len(bad)} book GETs failed, e.g. status {bad[0]}")
    return sum(1 for _, cache in results if cache == "hit")


def measure(pair: int, target: str, proc: Managed, port: int, path: str, args: argparse.Namespace,
            redis_pid: int | None, ids_file: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """One wrk run, with the CPU seconds the app (master + workers) and redis-server spent on it."""
    assert proc.pid is not None
    run = measured(lambda: run_wrk(port, path, args.duration, args.connections, ids_file), proc.pid,
                   {"redis": redis_pid}, pair=pair, target=target)  # fmt: skip
    print(row(run, COLUMNS), flush=True)
    return run


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("rps", "p50", "p90", "p99", "cpu_ms_per_1k", "redis_cpu_ms_per_1k")
    ratios = round_ratios(runs, "cached", "empty")
    ratio = statistics.median(ratios)
    return {"medians": medians(runs, TARGETS, keys), "pair_ratios": ratios, "ratio": ratio, "goal": GOAL,
            "verdict": "PASS" if ratio >= GOAL else "BELOW", "non2xx": sum(r["non2xx"] for r in runs),
            "socket_errors": sum(r["socket_errors"] for r in runs)}  # fmt: skip


def bench(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Start everything in ``tmp`` (logs in tmp/log), warm, measure the pairs; stop everything, also on errors."""
    with Harness(tmp, BOOKS) as harness:
        shared = harness.services
        ids, ids_file = book_ids_file(shared.database_uri, tmp, IDS)

        # RESTENGINE_CACHE_TTL: fresh for the whole bench, so every measured GET is a hit.
        env = shared.env(workers=args.workers, threads=args.threads, RESTENGINE_CACHE_TTL="3600")
        port_a, port_b = free_port(), free_port()
        app = gunicorn_app("restengine", port_a, env, harness.log_dir, "restengine.wsgi:app", "/healthz")
        empty = gunicorn_app("empty", port_b, env, harness.log_dir, "bench.peers.empty_app:app", "/empty")
        harness.start([app, empty])

        print(f"warming: {len(ids)} book ids, then 2 s of wrk on each app", flush=True)
        cache_hits(port_a, ids)
        run_wrk(port_a, "/", 2, args.connections, ids_file)
        run_wrk(port_b, "/empty", 2, args.connections)
        hits = cache_hits(port_a, ids)
        if hits != len(ids):
            raise RuntimeError(f"after warming only {hits}/{len(ids)} book GETs were X-Cache: hit")
        print(f"cache warm: {hits}/{len(ids)} book GETs are X-Cache: hit\n\n{header(COLUMNS)}", flush=True)

        redis_pid = shared.redis.pid
        runs = []
        for pair in range(1, args.pairs + 1):
            runs.append(measure(pair, "cached", app, port_a, "/", args, redis_pid, ids_file))
            runs.append(measure(pair, "empty", empty, port_b, "/empty", args, redis_pid))
        hits_after = cache_hits(port_a, ids)
        return {"runs": runs, "summary": summarize(runs), "hits_after": f"{hits_after}/{len(ids)}"}


def report(result: dict[str, Any]) -> None:
    s = result["summary"]
    cached, empty = s["medians"]["cached"], s["medians"]["empty"]
    print(f"\nmedian  cached {cached['rps']:.0f} req/s (p99 {cached['p99']:.2f} ms), "
          f"empty {empty['rps']:.0f} req/s (p99 {empty['p99']:.2f} ms)")  # fmt: skip
    print(f"ratio cached item GET / empty endpoint: {s['ratio']:.2f} (pairs: "
          f"{', '.join(f'{r:.2f}' for r in s['pair_ratios'])})  goal >= {GOAL:.2f}: {s['verdict']}")  # fmt: skip
    warn_errors(s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cache_ratio", description=__doc__.split("\n\n")[0])
    add_options(parser)
    args = resolve(parser.parse_args(argv))
    config = vars(args) | {"books": BOOKS, "ids": IDS, "wrk_threads": 2}
    return run_command("cache_ratio", args, bench, report, config)


if __name__ == "__main__":
    sys.exit(main())
