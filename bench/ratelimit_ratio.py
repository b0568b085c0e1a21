"""What the rate limiter costs a cached item GET: the limiter on (counting in Redis, never refusing) against off.

    .venv/bin/python -m bench.ratelimit_ratio [--quick] [--pairs N] [--duration S] [--connections C]
                                              [--workers W] [--threads T] [--access-log]

Starts, on free loopback ports in a temp dir: the embedded database, a redis-server, the demo bookstore
with 2,000 books, and two RestEngine gunicorn instances (gunicorn.conf.py, 2 workers × 8 gthread threads,
no access log unless --access-log), alike but for the limiter: (on) ``RESTENGINE_RATE_LIMIT`` at a rate no
run reaches, so every request is counted in Redis (one atomic increment) and answered with the RateLimit
fields; (off) ``RESTENGINE_RATE_LIMIT=off`` and ``RESTENGINE_WRITE_RATE_LIMIT=off``, no limiter at all.
Checks one GET per side (200, X-Cache: hit, the RateLimit fields present on one side only), warms each side
with 2 s of wrk, then runs ``wrk -t2 -c<C> --latency`` on one cached book, interleaved round by round
(on off, off on, …: the order alternates). Prints every run, the medians, the per-round ratios on/off of
req/s and of app CPU per request (and Redis's CPU per request), and writes the raw figures to
bench/results/ratelimit_ratio-<timestamp>.json. Fails (exit 1) when any wrk run has a non-2xx response or a
socket error. Needs ``wrk``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from functools import partial
from pathlib import Path
from typing import Any

from bench.auth_ratio import one_book, strict, tree
from bench.interleaved import (
    LOAD,
    WRK_COLUMNS,
    Column,
    LogLines,
    add_options,
    get_once,
    header,
    measured,
    medians,
    resolve,
    round_ratios,
    row,
    run_command,
)
from bench.measure import wrk
from bench.procs import UNREFUSED, Harness, gunicorn_app
from restengine.ops.processes import free_port

BOOKS = 2000
SIDES = ("on", "off")
COLUMNS = (
    Column("round", "round", 5, "d"),
    Column("side", "target", 4, "s", left=True),
    *WRK_COLUMNS,
    Column("redis", "redis_cpu_ms_per_1k", 9, ".0f", "ms/1k req"),
    LOAD,
)
FALLBACK = "redis unavailable"  # what the app logs when the cache answers from the database instead
KEYS = ("rps", "p50", "p90", "p99", "cpu_ms_per_1k", "redis_cpu_ms_per_1k", "db_cpu_ms_per_1k")
LIMITS = {
    "on": {"RESTENGINE_RATE_LIMIT": UNREFUSED, "RESTENGINE_WRITE_RATE_LIMIT": UNREFUSED},
    "off": {"RESTENGINE_RATE_LIMIT": "off", "RESTENGINE_WRITE_RATE_LIMIT": "off"},
}


def check(ports: dict[str, int], path: str) -> dict[str, str]:
    """One GET per side: a 200 cache hit, with the RateLimit fields on the ``on`` side only."""
    import http.client

    seen: dict[str, str] = {}
    for side, port in ports.items():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            fields = response.getheader("RateLimit")
            seen[side] = f"{response.status} X-Cache: {response.getheader('X-Cache')} RateLimit: {fields}"
            if response.status != 200 or response.getheader("X-Cache") != "hit" or (fields is None) == (side == "on"):
                raise RuntimeError(f"{side}: GET {path} answered {seen[side]}")
        finally:
            conn.close()
    return seen


def bench(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    measured_tree = tree()
    with Harness(tmp, BOOKS) as harness:
        shared = harness.services
        path = f"/api/books/{one_book(shared.database_uri)}"
        apps, ports = {}, {}
        for side in SIDES:
            env = shared.env(workers=args.workers, threads=args.threads, RESTENGINE_CACHE_TTL="3600", **LIMITS[side])
            env["RESTENGINE_ACCESS_LOG"] = "on" if args.access_log else "off"
            ports[side] = free_port()
            apps[side] = gunicorn_app(
                f"rl-{side}", ports[side], env, harness.log_dir, "restengine.wsgi:app", "/healthz"
            )
        harness.start(list(apps.values()))
        for port in ports.values():
            get_once(port, path)  # a miss fills the cache
        checks = {"before": check(ports, path)}
        fallbacks = {side: LogLines(app.log_path, FALLBACK) for side, app in apps.items()}

        def run(side: str, seconds: int) -> dict[str, Any]:
            fallbacks[side].new()
            result = wrk(ports[side], path, connections=args.connections, seconds=seconds)
            return strict(result, side, fallbacks[side].new())

        print(f"GET {path}: {checks['before']}\nwarming: 2 s of wrk per side", flush=True)
        for side in SIDES:
            run(side, 2)
        print(f"\n{header(COLUMNS)}", flush=True)
        runs = []
        for round_ in range(1, args.pairs + 1):
            for side in SIDES if round_ % 2 else tuple(reversed(SIDES)):
                pid = apps[side].pid
                assert pid is not None
                result = measured(partial(run, side, args.duration), pid, harness.pids(), round=round_, target=side)
                print(row(result, COLUMNS), flush=True)
                runs.append(result)
        checks["after"] = check(ports, path)
        return {"path": path, "runs": runs, "summary": summarize(runs), "checks": checks, "tree": measured_tree}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    rounds = round_ratios(runs, "on", "off")
    cpu = round_ratios(runs, "on", "off", "cpu_ms_per_1k")
    return {
        "medians": medians(runs, SIDES, KEYS),
        "rps_rounds": rounds,
        "rps_median": statistics.median(rounds),
        "cpu_rounds": cpu,
        "cpu_median": statistics.median(cpu),
    }


def report(result: dict[str, Any]) -> None:
    s = result["summary"]
    mid = s["medians"]
    print("\nmedian  " + ", ".join(f"{side} {mid[side]['rps']:.0f} req/s (p99 {mid[side]['p99']:.2f} ms)"
                                   for side in SIDES))  # fmt: skip
    print("app CPU per request, median: " + ", ".join(f"{side} {mid[side]['cpu_ms_per_1k'] / 1000:.3f} ms"
                                                      for side in SIDES))  # fmt: skip
    print("Redis CPU per request, median: " + ", ".join(f"{side} {mid[side]['redis_cpu_ms_per_1k'] / 1000:.3f} ms"
                                                        for side in SIDES))  # fmt: skip
    print(f"ratio on/off req/s: {s['rps_median']:.2f} (rounds: {', '.join(f'{x:.2f}' for x in s['rps_rounds'])})")
    print(f"ratio on/off app CPU per request: {s['cpu_median']:.2f} "
          f"(rounds: {', '.join(f'{x:.2f}' for x in s['cpu_rounds'])})")  # fmt: skip
    if result["tree"]["src_changed"]:
        print(f"note: measured with uncommitted changes in {', '.join(result['tree']['src_changed'])}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ratelimit_ratio", description=__doc__.split("\n\n")[0])
    add_options(parser, what="rounds")
    parser.add_argument("--access-log", action="store_true", help="keep gunicorn's access log on (default: off)")
    args = resolve(parser.parse_args(argv))
    config = vars(args) | {"books": BOOKS, "wrk_threads": 2, "sides": list(SIDES), "on": LIMITS["on"]}
    return run_command("ratelimit_ratio", args, bench, report, config)


if __name__ == "__main__":
    sys.exit(main())
