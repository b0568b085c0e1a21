"""RestEngine against what users would pick instead: one command, same data, same database.

    .venv/bin/python -m bench.run            # full: every configuration, workload and concurrency (~11 min)
    .venv/bin/python -m bench.run --quick    # 3 configurations, 2 workloads, 64 connections (< 2 min)

Starts, on free loopback ports in a temp dir: the embedded database (SecantusDB) seeded with the
demo bookstore, and a redis-server. Then, one configuration at a time: starts it and warms it up,
and for each workload restores the database from the seeded copy and drives ``wrk``
(bench/wrk/workload.lua: random ids and tags) at each concurrency, every run starting once the
last one's backlog is done (up to 5 s); reads CPU time from /proc (app processes, the database, Redis, wrk).
An app left with more than a second of backlog (requests wrk gave up on) is restarted and warmed
up again instead of waited for. Writes the raw results to bench/results/run-<timestamp>.json, a
markdown report to docs/benchmarks-peers.md and plots to docs/img/ (a --quick or --only run: to
bench/results/), and prints the project's performance ratios (a report, not assertions) and where
the time went. Needs ``wrk`` and the ``bench`` extra (FastAPI, uvicorn, Eve, matplotlib).
Loopback only; every run is bounded.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.configs import Config, choose, configs, deep_page, series
from bench.measure import versions, wait_idle
from bench.paths import RESULTS, ROOT
from bench.procs import App, sigterm_as_interrupt
from bench.report import report_paths, write_report
from bench.session import Phases, Session, open_session
from bench.workload import measure, reconnect, warm

BACKLOG_WAIT = 1.0  # seconds to wait for a series' backlog before restarting the app instead


def main(argv: list[str] | None = None) -> int:
    """Run the configurations the flags choose, write the raw results and the report; 2 without wrk, else 0."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 configurations, 2 workloads, 64 connections")
    parser.add_argument("--seconds", type=int, default=None, help="seconds per run (default 2, quick 3)")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated configuration names (substring match); the report goes to bench/results/partial.md",
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: ./dev setup (or apt-get install wrk)", file=sys.stderr)
        return 2
    quick = args.quick
    seconds = args.seconds or (3 if quick else 2)
    levels = (64,) if quick else (1, 16, 64, 256)
    books = 2000 if quick else 10_000
    sigterm_as_interrupt()
    started = time.time()
    phases = Phases()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="restengine-bench-") as tmpdir:
        try:
            with open_session(Path(tmpdir), books, phases) as session:
                chosen = choose(configs(session.deep_cursor, deep_page(books)), quick=quick, only=args.only)
                for index, config in enumerate(chosen):
                    begun = time.monotonic()
                    results += run_config(session, config, index, levels, seconds, quick)
                    print(f"{config.name}: {time.monotonic() - begun:.0f} s", flush=True)
        except KeyboardInterrupt:
            print("interrupted: stopping everything", file=sys.stderr)

    command = "python -m bench.run" + (" --quick" if quick else "") + (f" --only '{args.only}'" if args.only else "")
    meta = {
        "command": command,
        "seconds_per_run": seconds,
        "duration_s": round(time.time() - started),
        "versions": versions(),
        "date": time.strftime("%Y-%m-%d"),
        "books": books,
        "deep_page": deep_page(books),
        "phases_s": {k: round(v) for k, v in phases.seconds.items()},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    raw = RESULTS / f"run-{time.strftime('%Y%m%dT%H%M%S')}.json"
    raw.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    report, img = report_paths(quick, partial=bool(args.only))
    print(write_report(results, meta, report, img, quick=quick))
    print(phases.summary(time.time() - started))
    print(f"raw results: {raw.relative_to(ROOT)}; report: {report.relative_to(ROOT)}")
    return 0


def run_config(session: Session, config: Config, index: int, levels: tuple[int, ...], seconds: int,
               quick: bool) -> list[dict[str, Any]]:  # fmt: skip
    """Every series of one configuration, each on a fresh database (and, after a backlog, a fresh app).

    A configuration that fails yields an ``error`` entry instead of raising: it must not lose the others.
    """
    app: App | None = None
    out: list[dict[str, Any]] = []
    log = session.tmp / f"log-{index}"
    try:
        for number, (workload, connection_levels) in enumerate(series(config, levels, quick)):
            if app is not None and settled(session, app):
                with session.phases.time("reset"):
                    session.database.reset()
                with session.phases.time("reconnect"):
                    reconnect(session, config, app.port)
            else:  # the first series, or the last one left a backlog that would outlast a restart
                stop_app(session, app)
                app = None
                log = session.tmp / f"log-{index}-{number}"
                app = start_app(session, config, log)
            for connections in connection_levels:
                result = measure(session, config, app, workload, connections, seconds)
                out.append(result)
                print(f"{config.name:30} {workload:8} c={connections:<3} {result['rps']:8.0f} req/s  "
                      f"p99 {result['p99'] or 0:7.1f} ms  errors {result['non2xx'] + result['socket_errors']}",
                      flush=True)  # fmt: skip
    except Exception as exc:
        print(f"{config.name}: FAILED: {exc} (logs in {log})", file=sys.stderr)
        out.append({"config": config.name, "error": str(exc)})
    finally:
        stop_app(session, app)
    return out


def settled(session: Session, app: App) -> bool:
    """Whether the last series' abandoned requests finish soon enough to wait for them.

    An app keeps serving the requests wrk gave up on (gunicorn and uvicorn queue them, and a
    database reset does not stop them: the driver retries them on the fresh one); past
    ``BACKLOG_WAIT`` (eve's expand at 256 connections would take minutes) restarting it is faster.
    """
    with session.phases.time("drain"):
        return wait_idle((p.pid for p in [*app.procs, *session.infra.values()]), cap=BACKLOG_WAIT)


def start_app(session: Session, config: Config, log: Path) -> App:
    """A fresh database, then the app on it (logs in ``log``), warmed up; warm-up only reads, so
    the data stays as seeded. On a failure nothing of the app is left running."""
    log.mkdir()
    with session.phases.time("reset"):
        session.database.reset()
    with session.phases.time("start"):
        app = config.start(log, session.env, config.health)
    try:
        with session.phases.time("warm"):
            warm(session, config, app.port)
    except BaseException:
        stop_app(session, app)
        raise
    return app


def stop_app(session: Session, app: App | None) -> None:
    """Kill the app, if any (see ``App.kill``)."""
    with session.phases.time("stop"):
        if app is not None:
            app.kill()


if __name__ == "__main__":
    sys.exit(main())
