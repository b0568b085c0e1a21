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
import json
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.measure import cpu_seconds, versions, wrk
from bench.paths import RESULTS, ROOT, SCRIPTS
from bench.procs import Services, gunicorn_app, sigterm_as_interrupt, start_all, start_services
from restengine.ops.dbserver import HOST, DatabaseServer
from restengine.ops.processes import Managed, free_port

LUA = SCRIPTS / "random_ids.lua"
GOAL = 0.80
BOOKS, IDS = 2000, 200


def run_wrk(port: int, path: str, seconds: int, connections: int, ids_file: Path | None = None) -> dict[str, Any]:
    """``wrk -t2`` against ``path``, or with ``ids_file``: GETs of random book ids from that file."""
    if ids_file is None:
        return wrk(port, path, connections=connections, seconds=seconds)
    return wrk(port, path, connections=connections, seconds=seconds, script=LUA,
               env={"RANDOM_IDS_FILE": str(ids_file)})  # fmt: skip


def get(conn: http.client.HTTPConnection, path: str) -> tuple[int, str | None]:
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    return response.status, response.getheader("X-Cache")


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


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def row(run: dict[str, Any]) -> str:
    cpu = run["cpu_ms_per_1k"]
    return (f"{run['pair']:>4}  {run['target']:<6} {run['rps']:>9.0f} {fmt(run['p50']):>8} {fmt(run['p90']):>8} "
            f"{fmt(run['p99']):>8} {run['non2xx']:>7} {run['socket_errors']:>7} {fmt(cpu, '.0f'):>10} "
            f"{run['redis_cpu_ms_per_1k']:>10.0f} {run['loadavg_1m']:>6.2f}")  # fmt: skip


HEADER = (f"{'pair':>4}  {'target':<6} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
          f"{'non2xx':>7} {'errors':>7} {'app cpu ms':>10} {'redis cpu':>10} {'load':>6}\n"
          f"{'':>66}{'per 1k req':>10} {'ms/1k req':>10}")  # fmt: skip


def measure(pair: int, target: str, proc: Managed, port: int, path: str, args: argparse.Namespace,
            redis_pid: int, ids_file: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """One wrk run, with the CPU seconds the app (master + workers) and redis-server spent on it."""
    assert proc.pid is not None
    before = cpu_seconds(proc.pid), cpu_seconds(redis_pid)
    result = run_wrk(port, path, args.duration, args.connections, ids_file)
    app_cpu, redis_cpu = cpu_seconds(proc.pid) - before[0], cpu_seconds(redis_pid) - before[1]
    per_1k = 1e6 / result["requests"] if result["requests"] else 0.0
    run = {"pair": pair, "target": target, **result, "app_cpu_s": round(app_cpu, 3), "cpu_ms_per_1k": app_cpu * per_1k,
           "redis_cpu_ms_per_1k": redis_cpu * per_1k, "loadavg_1m": os.getloadavg()[0]}  # fmt: skip
    print(row(run), flush=True)
    return run


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    by = {t: [r for r in runs if r["target"] == t] for t in ("cached", "empty")}
    keys = ("rps", "p50", "p90", "p99", "cpu_ms_per_1k", "redis_cpu_ms_per_1k")
    medians = {t: {k: statistics.median(r[k] for r in rs) for k in keys} for t, rs in by.items()}
    ratios = [a["rps"] / b["rps"] for a, b in zip(by["cached"], by["empty"], strict=True)]
    ratio = statistics.median(ratios)
    return {"medians": medians, "pair_ratios": ratios, "ratio": ratio, "goal": GOAL,
            "verdict": "PASS" if ratio >= GOAL else "BELOW", "non2xx": sum(r["non2xx"] for r in runs),
            "socket_errors": sum(r["socket_errors"] for r in runs)}  # fmt: skip


def bench(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Start everything in ``tmp`` (logs in tmp/log), warm, measure the pairs; stop everything, also on errors."""
    log_dir = tmp / "log"
    database = DatabaseServer(tmp / "data", free_port())
    shared: Services | None = None
    apps: list[Managed] = []
    try:
        database.start()
        shared = start_services(database.uri, BOOKS, tmp, log_dir)
        ids = _book_ids(database.uri)
        ids_file = tmp / "ids.txt"
        ids_file.write_text("\n".join(ids) + "\n")

        # RESTENGINE_CACHE_TTL: fresh for the whole bench, so every measured GET is a hit.
        env = shared.env(workers=args.workers, threads=args.threads, RESTENGINE_CACHE_TTL="3600")
        port_a, port_b = free_port(), free_port()
        app = gunicorn_app("restengine", port_a, env, log_dir, "restengine.wsgi:app", "/healthz")
        empty = gunicorn_app("empty", port_b, env, log_dir, "bench.peers.empty_app:app", "/empty")
        apps = [app, empty]
        start_all(apps)

        print(f"warming: {len(ids)} book ids, then 2 s of wrk on each app", flush=True)
        cache_hits(port_a, ids)
        run_wrk(port_a, "/", 2, args.connections, ids_file)
        run_wrk(port_b, "/empty", 2, args.connections)
        hits = cache_hits(port_a, ids)
        if hits != len(ids):
            raise RuntimeError(f"after warming only {hits}/{len(ids)} book GETs were X-Cache: hit")
        print(f"cache warm: {hits}/{len(ids)} book GETs are X-Cache: hit\n\n{HEADER}", flush=True)

        redis_pid = shared.redis.pid
        assert redis_pid is not None
        runs = []
        for pair in range(1, args.pairs + 1):
            runs.append(measure(pair, "cached", app, port_a, "/", args, redis_pid, ids_file))
            runs.append(measure(pair, "empty", empty, port_b, "/empty", args, redis_pid))
        hits_after = cache_hits(port_a, ids)
        return {"runs": runs, "summary": summarize(runs), "hits_after": f"{hits_after}/{len(ids)}"}
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut the clean-up short
            signal.signal(sig, signal.SIG_IGN)
        for proc in reversed(apps):
            proc.stop()
        if shared is not None:
            shared.stop()
        database.stop()


def _book_ids(uri: str) -> list[str]:
    from pymongo import MongoClient

    client: MongoClient[dict[str, Any]] = MongoClient(uri)
    try:
        ids = [str(doc["_id"]) for doc in client.get_default_database()["books"].find({}, {"_id": 1})]
    finally:
        client.close()
    return random.Random(1).sample(ids, min(IDS, len(ids)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cache_ratio", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 pairs of 5 s runs")
    parser.add_argument("--pairs", type=int, help="A B pairs (default 5; --quick: 3)")
    parser.add_argument("--duration", type=int, help="seconds per wrk run (default 10; --quick: 5)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per app (default 2)")
    parser.add_argument("--threads", type=int, default=8, help="gthread threads per worker (default 8)")
    args = parser.parse_args(argv)
    args.pairs = args.pairs or (3 if args.quick else 5)
    args.duration = args.duration or (5 if args.quick else 10)
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

    s = result["summary"]
    cached, empty = s["medians"]["cached"], s["medians"]["empty"]
    print(f"\nmedian  cached {cached['rps']:.0f} req/s (p99 {cached['p99']:.2f} ms), "
          f"empty {empty['rps']:.0f} req/s (p99 {empty['p99']:.2f} ms)")  # fmt: skip
    print(f"ratio cached item GET / empty endpoint: {s['ratio']:.2f} (pairs: "
          f"{', '.join(f'{r:.2f}' for r in s['pair_ratios'])})  goal >= {GOAL:.2f}: {s['verdict']}")  # fmt: skip
    if s["non2xx"] or s["socket_errors"]:
        print(f"warning: {s['non2xx']} non-2xx responses, {s['socket_errors']} socket errors")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"cache_ratio-{started}.json"
    config = vars(args) | {"books": BOOKS, "ids": IDS, "wrk_threads": 2}
    out.write_text(json.dumps({"started": started, "config": config, "machine": versions(), **result}, indent=2) + "\n")
    print(f"results: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
