"""The uncached item GET (or list) as shipped, against the previous defaults and against its peers.

    .venv/bin/python -m bench.process_model [--quick] [--pairs N] [--duration S] [--connections C]
                                            [--workers W] [--threads T] [--targets A,B,...]
                                            [--workload item|list] [--books N]

Starts, on free loopback ports in a temp dir: the embedded database, a redis-server, the demo
bookstore with 2,000 books (--books), then the apps (--targets, by default all six), five of them
gunicorn instances on the same worker settings (gunicorn.conf.py, W workers x T threads), every GET
reaching the database (RestEngine's cache off):

- ``shipped``: RestEngine as shipped (the app preloaded in the master, no worker recycling, no access log);
- ``cached``: the same with the response cache on, as shipped (``RESTENGINE_CACHE_TTL`` 60: Redis and each
  worker's near cache); every GET after the warm-up is a hit (the equal-footing comparison is ``shipped``);
- ``before``: RestEngine with the defaults before issue 14 (no preload, ``max_requests`` 2000 with 200
  jitter, the access log on);
- ``legacy``: ``bench.peers.legacy_flask``, a hand-written Flask view doing ``Book.objects.get(id=...)``
  and ``json.dumps``, on the shipped settings (what a legacy team would write by hand);
- ``raw``: ``bench.peers.raw_pymongo``, a Flask view doing a bare ``find_one`` and orjson, on the shipped
  settings (the ceiling for the app's and the database's CPU per request);
- ``fastapi``: ``bench.peers.fastapi_async``, FastAPI with async PyMongo on uvicorn (2 workers, uvloop).

Runs ``wrk -t2 -c<C> --latency`` with random book ids (``--workload list``: the first page of 20 books
with a random tag, ``/api/books?tags=<tag>&limit=20``, which every app answers in ``_id`` order),
interleaved in the order of --targets for --pairs rounds (the machine's speed drifts). Prints every run
(with the app's and the database's CPU per 1,000 requests), the medians, and the median of the per-round
ratios of ``shipped`` to each other app (the goal shipped/legacy >= 1.0 is a report, not an assertion);
writes the raw figures to bench/results/process_model-<timestamp>.json. Needs ``wrk``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.configs import UVICORN
from bench.interleaved import (
    LOAD,
    WRK_COLUMNS,
    Column,
    add_options,
    book_ids_file,
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
from bench.procs import Harness, command_app, gunicorn_app
from bench.workload import LUA, TAGS
from restengine.ops.processes import Managed, free_port

BOOKS, IDS = 2000, 200
LIST_PATH = "/api/books?tags={tag}&limit=20"  # every app answers it; the tag is one of bench.workload.TAGS
GOAL = 1.0
TARGETS = ("shipped", "cached", "before", "legacy", "raw", "fastapi")
CACHED = {"RESTENGINE_CACHE_TTL": "60"}  # the shipped default: the shared cache (Redis) and each worker's near cache
BEFORE = {
    "RESTENGINE_PRELOAD": "off",
    "RESTENGINE_MAX_REQUESTS": "2000",
    "RESTENGINE_MAX_REQUESTS_JITTER": "200",
    "RESTENGINE_ACCESS_LOG": "on",
}
COLUMNS = (
    Column("pair", "pair", 4, "d"),
    Column("target", "target", 7, "s", left=True),
    *WRK_COLUMNS,
    Column("db_ms/1k", "db_cpu_ms_per_1k", 9, ".0f"),
    LOAD,
)


def bench(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Start everything in ``tmp``, warm each app, measure the rounds; stop everything, also on errors."""
    with Harness(tmp, args.books) as harness:
        shared = harness.services
        _, ids_file = book_ids_file(shared.database_uri, tmp, IDS)
        common = {"RESTENGINE_CACHE_TTL": "0", "RESTENGINE_ACCESS_LOG": "off"}
        env = shared.env(workers=args.workers, threads=args.threads, **common)
        apps: dict[str, tuple[Managed, int]] = {}
        for target, app, extra in (
            ("shipped", "restengine.wsgi:app", {}),
            ("cached", "restengine.wsgi:app", CACHED),
            ("before", "restengine.wsgi:app", BEFORE),
            ("legacy", "bench.peers.legacy_flask:app", {}),
            ("raw", "bench.peers.raw_pymongo:app", {}),
        ):
            if target not in args.targets:
                continue
            port = free_port()
            health = "/healthz"
            apps[target] = (gunicorn_app(target, port, {**env, **extra}, harness.log_dir, app, health), port)
        if "fastapi" in args.targets:
            port = free_port()
            fastapi = [*UVICORN, str(port), "bench.peers.fastapi_async:app"]
            apps["fastapi"] = (command_app("fastapi", fastapi, port, env, harness.log_dir, "/healthz"), port)
        harness.start([proc for proc, _ in apps.values()])

        def load(port: int, seconds: int) -> dict[str, Any]:
            if args.workload == "list":
                env = {"WL_KIND": "list", "WL_TAGS": TAGS, "WL_LIST": LIST_PATH}
                return wrk(port, connections=args.connections, seconds=seconds, script=LUA, env=env)
            return wrk_random_ids(port, seconds, args.connections, ids_file)

        print("warming: 2 s of wrk on each app", flush=True)
        for _, port in apps.values():
            load(port, 2)
        print(header(COLUMNS), flush=True)
        db_pid = harness.pids()["db"]
        runs: list[dict[str, Any]] = []
        for pair in range(1, args.pairs + 1):
            for target in args.targets:
                proc, port = apps[target]
                assert proc.pid is not None
                result = measured(lambda port=port: load(port, args.duration),
                                  proc.pid, {"db": db_pid}, pair=pair, target=target)  # fmt: skip
                print(row(result, COLUMNS), flush=True)
                runs.append(result)
        return {"runs": runs, "summary": summarize(runs, args.targets)}


RATIOS = (
    ("cached/fastapi", "fastapi", "rps", "cached"),
    ("cached/legacy", "legacy", "rps", "cached"),
    ("shipped/before", "before", "rps", "shipped"),
    ("shipped/legacy", "legacy", "rps", "shipped"),
    ("app cpu shipped/legacy", "legacy", "cpu_ms_per_1k", "shipped"),
    ("db cpu shipped/legacy", "legacy", "db_cpu_ms_per_1k", "shipped"),
    ("shipped/fastapi", "fastapi", "rps", "shipped"),
    ("app cpu shipped/raw", "raw", "cpu_ms_per_1k", "shipped"),
    ("db cpu shipped/raw", "raw", "db_cpu_ms_per_1k", "shipped"),
)


def summarize(runs: list[dict[str, Any]], targets: Sequence[str] = TARGETS) -> dict[str, Any]:
    keys = ("rps", "p50", "p99", "cpu_ms_per_1k", "db_cpu_ms_per_1k")
    ratios = {
        name: round_ratios(runs, side, baseline, key=key)
        for name, baseline, key, side in RATIOS
        if side in targets and baseline in targets
    }
    return {
        "medians": medians(runs, targets, keys),
        "pair_ratios": ratios,
        "ratios": {name: statistics.median(values) for name, values in ratios.items()},
        "goal": GOAL,
        "non2xx": sum(r["non2xx"] for r in runs),
        "socket_errors": sum(r["socket_errors"] for r in runs),
    }


def report(result: dict[str, Any]) -> None:
    s = result["summary"]
    for target in s["medians"]:
        m = s["medians"][target]
        print(f"median  {target:<8} {m['rps']:.0f} req/s (p99 {m['p99']:.2f} ms), app {m['cpu_ms_per_1k']:.0f} "
              f"ms CPU / 1k requests, database {m['db_cpu_ms_per_1k']:.0f}")  # fmt: skip
    for name, ratio in s["ratios"].items():
        pairs = ", ".join(f"{r:.2f}" for r in s["pair_ratios"][name])
        print(f"ratio {name}: {ratio:.2f} (rounds: {pairs})")
    if "shipped/legacy" in s["ratios"]:
        verdict = "PASS" if s["ratios"]["shipped/legacy"] >= GOAL else "BELOW"
        print(f"goal: shipped >= {GOAL:.1f}x the hand-written view: {verdict}")
    warn_errors(s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.process_model", description=__doc__.split("\n\n")[0])
    add_options(parser)
    every = ",".join(TARGETS)
    parser.add_argument("--targets", default=every, help=f"apps to measure, in this order (default {every})")
    parser.add_argument("--workload", choices=("item", "list"), default="item",
                        help=f"item: GET /api/books/<id>; list: {LIST_PATH} (default item)")  # fmt: skip
    parser.add_argument("--books", type=int, default=BOOKS, help=f"demo books (default {BOOKS})")
    args = resolve(parser.parse_args(argv))
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if not args.targets or set(args.targets) - set(TARGETS):
        parser.error(f"--targets: choose from {', '.join(TARGETS)}")
    config = vars(args) | {"ids": IDS, "wrk_threads": 2, "before": BEFORE, "cached": CACHED}
    return run_command("process_model", args, bench, report, config)


if __name__ == "__main__":
    sys.exit(main())
