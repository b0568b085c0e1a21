"""What one setting costs a GET: two RestEngine instances alike but for it, measured in interleaved rounds.

The machinery of ``bench.ratelimit_ratio`` and ``bench.metrics_ratio``: the embedded database, a
redis-server, the demo bookstore with 2,000 books, one gunicorn instance per side (gunicorn.conf.py, W
workers × T gthread threads, no access log unless asked), one book GET per run (cached: fresh for the whole
bench, every GET a hit; uncached: ``RESTENGINE_CACHE_TTL=0``, every GET reads the database), ``wrk -t2
-c<C> --latency`` per run, the sides alternating (A B, B A, …). Reports the medians, the per-round ratios of
req/s and of app CPU per request (the first side over the second) and Redis's and the database's CPU per
request.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable, Mapping
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
from bench.procs import Harness, gunicorn_app
from restengine.ops.processes import free_port

BOOKS = 2000
FALLBACK = "redis unavailable"  # what the app logs when the cache answers from the database instead
KEYS = ("rps", "p50", "p90", "p99", "cpu_ms_per_1k", "redis_cpu_ms_per_1k", "db_cpu_ms_per_1k")
COLUMNS = (
    Column("round", "round", 5, "d"),
    Column("side", "target", 5, "s", left=True),
    *WRK_COLUMNS,
    Column("db cpu", "db_cpu_ms_per_1k", 9, ".0f", "ms/1k req"),
    Column("redis", "redis_cpu_ms_per_1k", 9, ".0f", "ms/1k req"),
    LOAD,
)
Check = Callable[[str, int, Mapping[str, str | None]], str | None]  # side, status, headers -> what is wrong


def check(ports: Mapping[str, int], path: str, cached: bool, expect: Check) -> dict[str, str]:
    """One GET per side: a 200 (a cache hit when ``cached``), and what ``expect`` asks of its headers."""
    import http.client

    seen: dict[str, str] = {}
    for side, port in ports.items():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            headers = {name.lower(): value for name, value in response.getheaders()}
        finally:
            conn.close()
        seen[side] = f"{response.status} X-Cache: {headers.get('x-cache')}"
        wrong = expect(side, response.status, headers)
        if response.status != 200 or (cached and headers.get("x-cache") != "hit") or wrong:
            raise RuntimeError(f"{side}: GET {path} answered {seen[side]} {wrong or ''}")
    return seen


def bench(
    args: argparse.Namespace,
    tmp: Path,
    sides: Mapping[str, Mapping[str, str]],
    expect: Check,
    scrape: str | None = None,
) -> dict[str, Any]:
    """Start everything in ``tmp``, check, warm, measure the rounds (``sides``: name -> its environment).
    ``scrape``: a path asked of each side at the end (its status recorded: the ``on`` side must answer 200)."""
    names = tuple(sides)
    measured_tree = tree()
    with Harness(tmp, BOOKS) as harness:
        shared = harness.services
        path = f"/api/books/{one_book(shared.database_uri)}"
        apps, ports = {}, {}
        for side, extra in sides.items():
            ttl = "3600" if args.cached else "0"
            env = shared.env(workers=args.workers, threads=args.threads, RESTENGINE_CACHE_TTL=ttl, **extra)
            env["RESTENGINE_ACCESS_LOG"] = "on" if args.access_log else "off"
            ports[side] = free_port()
            apps[side] = gunicorn_app(f"s-{side}", ports[side], env, harness.log_dir, "restengine.wsgi:app", "/healthz")
        harness.start(list(apps.values()))
        for port in ports.values():
            get_once(port, path)  # a miss fills the cache
        checks = {"before": check(ports, path, args.cached, expect)}
        fallbacks = {side: LogLines(app.log_path, FALLBACK) for side, app in apps.items()}

        def run(side: str, seconds: int) -> dict[str, Any]:
            fallbacks[side].new()
            result = wrk(ports[side], path, connections=args.connections, seconds=seconds)
            return strict(result, side, fallbacks[side].new())

        print(f"GET {path}: {checks['before']}\nwarming: 2 s of wrk per side", flush=True)
        for side in names:
            run(side, 2)
        print(f"\n{header(COLUMNS)}", flush=True)
        runs = []
        for round_ in range(1, args.pairs + 1):
            for side in names if round_ % 2 else tuple(reversed(names)):
                pid = apps[side].pid
                assert pid is not None
                result = measured(partial(run, side, args.duration), pid, harness.pids(), round=round_, target=side)
                print(row(result, COLUMNS), flush=True)
                runs.append(result)
        checks["after"] = check(ports, path, args.cached, expect)
        if scrape is not None:
            checks["scrape"] = {side: str(get_once(port, scrape)[0]) for side, port in ports.items()}
            if checks["scrape"].get("on", "200") != "200":
                raise RuntimeError(f"GET {scrape} of the on side answered {checks['scrape']['on']}")
        return {"path": path, "runs": runs, "summary": summarize(runs, names), "checks": checks, "tree": measured_tree}


def summarize(runs: list[dict[str, Any]], names: tuple[str, ...]) -> dict[str, Any]:
    first, second = names
    rounds = round_ratios(runs, first, second)
    cpu = round_ratios(runs, first, second, "cpu_ms_per_1k")
    return {
        "sides": list(names),
        "medians": medians(runs, names, KEYS),
        "rps_rounds": rounds,
        "rps_median": statistics.median(rounds),
        "cpu_rounds": cpu,
        "cpu_median": statistics.median(cpu),
    }


def report(result: dict[str, Any]) -> None:
    s = result["summary"]
    first, second = s["sides"]
    mid = s["medians"]
    print("\nmedian  " + ", ".join(f"{side} {mid[side]['rps']:.0f} req/s (p99 {mid[side]['p99']:.2f} ms)"
                                   for side in s["sides"]))  # fmt: skip
    for what, key in (("app", "cpu_ms_per_1k"), ("database", "db_cpu_ms_per_1k"), ("Redis", "redis_cpu_ms_per_1k")):
        print(f"{what} CPU per request, median: "
              + ", ".join(f"{side} {mid[side][key] / 1000:.3f} ms" for side in s["sides"]))  # fmt: skip
    print(f"ratio {first}/{second} req/s: {s['rps_median']:.2f} "
          f"(rounds: {', '.join(f'{x:.2f}' for x in s['rps_rounds'])})")  # fmt: skip
    print(f"ratio {first}/{second} app CPU per request: {s['cpu_median']:.2f} "
          f"(rounds: {', '.join(f'{x:.2f}' for x in s['cpu_rounds'])})")  # fmt: skip
    if result["tree"]["src_changed"]:
        print(f"note: measured with uncommitted changes in {', '.join(result['tree']['src_changed'])}")


def add_cache_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--access-log", action="store_true", help="keep gunicorn's access log on (default: off)")
    parser.add_argument("--uncached", dest="cached", action="store_false",
                        help="RESTENGINE_CACHE_TTL=0: every GET reads the database (default: cached hits)")  # fmt: skip


def main(
    argv: list[str] | None,
    name: str,
    doc: str,
    sides: Mapping[str, Mapping[str, str]],
    expect: Check,
    scrape: str | None = None,
) -> int:
    """The command line of an on/off bench ``name`` (``python -m bench.<name>``): options, run, report, results."""
    parser = argparse.ArgumentParser(prog=f"python -m bench.{name}", description=doc.split("\n\n")[0])
    add_options(parser, what="rounds")
    add_cache_options(parser)
    args = resolve(parser.parse_args(argv))
    config = vars(args) | {"books": BOOKS, "wrk_threads": 2, "sides": sides}
    return run_command(name, args, partial(bench, sides=sides, expect=expect, scrape=scrape), report, config)
