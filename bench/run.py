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
import collections
import contextlib
import dataclasses
import http.client
import itertools
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pymongo import MongoClient

from bench.common import cpu_seconds, parse_wrk, versions
from restengine.api.pagination import CursorCodec
from restengine.config import DEMO_MODULE, Settings, load_settings
from restengine.ops.dbserver import HOST, DatabaseServer
from restengine.ops.processes import Managed, free_port
from restengine.ops.stack import Stack, gunicorn_process, http_ok, local_secret, prepare_database, redis_process

ROOT = Path(__file__).resolve().parents[1]
LUA = ROOT / "bench" / "wrk" / "workload.lua"
RESULTS, IMG = ROOT / "bench" / "results", ROOT / "docs" / "img"
REPORT = ROOT / "docs" / "benchmarks-peers.md"
TAGS = "fiction,history,science,poetry,travel,classic,mystery,fantasy"
EVE_WHERE = quote('{"tags":"{tag}"}', safe="{}")


@dataclasses.dataclass
class Config:
    """How to start one thing to measure, and the URLs it answers."""

    name: str
    start: Callable[[Path, dict[str, str]], tuple[list[Managed], int]]
    workloads: tuple[str, ...]
    item: str = "/api/books/{id}"
    list: str = "/api/books?tags={tag}&limit=20"
    expand: str = "/api/books?tags={tag}&limit=20&expand=author"
    create: str = "/api/books"
    body: str | None = None
    deep: tuple[str, str] | None = None  # (page 1 path, page 500 path)
    health: str = "/healthz"


def _managed(name: str, argv: list[str], port: int, env: dict[str, str], log: Path) -> Managed:
    return Managed(name=name, argv=argv, log_path=log / f"{name}.log", env=env, cwd=ROOT,
                   ready=lambda: http_ok(port), ready_timeout=60)  # fmt: skip


def gunicorn(app: str, **extra: str) -> Callable[[Path, dict[str, str]], tuple[list[Managed], int]]:
    def start(log: Path, env: dict[str, str]) -> tuple[list[Managed], int]:
        port = free_port()
        proc = gunicorn_process(f"g{port}", port, {**env, **extra}, log)
        proc.argv = [*proc.argv, app]
        return [proc], port

    return start


def command(
    argv: Callable[[int], list[str]], **extra: str
) -> Callable[[Path, dict[str, str]], tuple[list[Managed], int]]:
    def start(log: Path, env: dict[str, str]) -> tuple[list[Managed], int]:
        port = free_port()
        return [_managed(f"p{port}", argv(port), port, {**env, **extra}, log)], port

    return start


def restengine_stack(log: Path, env: dict[str, str]) -> tuple[list[Managed], int]:
    """nginx in front of two gthread instances (and the watcher), on the shared database and Redis."""
    settings = load_settings(
        {"RESTENGINE_DATA_DIR": str(log / "stack"), "RESTENGINE_HTTP_PORT": free_port(),
         "RESTENGINE_INSTANCE_PORTS": f"{free_port()},{free_port()}"}, environ=env,
    )  # fmt: skip
    stack = Stack(settings, progress=False)
    stack.start()
    procs = [p for p in (*stack.instances, stack.watcher, stack.nginx) if p is not None]
    STACKS.append(stack)
    return procs, settings.http_port


STACKS: list[Stack] = []
FRESH: list[FreshDatabase] = []
RUNS = itertools.count()  # every wrk run creates ISBNs in its own range
UVICORN = [sys.executable, "-m", "uvicorn", "--workers", "2", "--loop", "uvloop", "--http", "httptools",
           "--no-access-log", "--host", HOST, "--port"]  # fmt: skip
ALL = ("item", "list", "expand", "create", "mix")
DRAIN_SAMPLE = 0.1  # seconds: every run drains first, so the idle case must cost little
WARM_SECONDS = 1  # per read workload, at every start of an app
BACKLOG_WAIT = 1.0  # seconds to wait for a series' backlog before restarting the app instead
PHASES: dict[str, float] = collections.defaultdict(float)  # wall seconds per phase of the whole run


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """Add the wall time of the block to ``PHASES[name]``: the run has a time budget, and the
    summary printed at the end shows which phase to cut when it is exceeded."""
    start = time.monotonic()
    try:
        yield
    finally:
        PHASES[name] += time.monotonic() - start


def configs(deep_cursor: str, page: int) -> list[Config]:
    deep = ("/api/books?limit=20", f"/api/books?limit=20&cursor={deep_cursor}")
    offset = ("/api/books?limit=20&page=1", f"/api/books?limit=20&page={page}")
    return [
        Config("restengine nginx 2×gthread", restengine_stack, ALL),
        Config("restengine gthread", gunicorn("restengine.wsgi:app"), ALL),
        Config(
            "restengine gthread no cache",
            gunicorn("restengine.wsgi:app", RESTENGINE_CACHE_TTL="0"),
            (*ALL, "deep"),
            deep=deep,
        ),
        Config("restengine gevent", gunicorn("restengine.wsgi:app", RESTENGINE_WORKER_CLASS="gevent"), ALL),
        Config(
            "legacy flask dev server",
            command(lambda p: [sys.executable, "-m", "bench.peers.legacy_flask", "--port", str(p)]),
            (*ALL, "deep"),
            deep=offset,
        ),
        Config(
            "gunicorn sync",
            command(
                lambda p: [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "-c",
                    "bench/peers/gunicorn_sync.conf.py",
                    "-w",
                    "2",
                    "-b",
                    f"{HOST}:{p}",
                    "bench.peers.legacy_flask:app",
                ]
            ),
            ALL,
        ),
        Config("fastapi threadpool", command(lambda p: [*UVICORN, str(p), "bench.peers.fastapi_threadpool:app"]), ALL),
        Config(
            "fastapi async",
            command(lambda p: [*UVICORN, str(p), "bench.peers.fastapi_async:app"]),
            (*ALL, "deep"),
            deep=offset,
        ),
        Config(
            "eve",
            gunicorn("bench.peers.eve_app:app"),
            ALL,
            list=f"/api/books?where={EVE_WHERE}&max_results=20",
            expand=f"/api/books?where={EVE_WHERE}&max_results=20&embedded=%7B%22author%22:1%7D",
            body='{"title":"Bench","isbn":"{isbn}","author":"{author}","price":9.99,"tags":["bench"]}',
        ),
        Config(
            "empty flask (ceiling)", gunicorn("bench.peers.empty_app:app"), ("item",), item="/empty", health="/empty"
        ),
        Config("raw pymongo (ceiling)", gunicorn("bench.peers.raw_pymongo:app"), ("item", "list")),
    ]


def run_wrk(config: Config, workload: str, port: int, connections: int, seconds: int, data: dict[str, Path],
            nonce: int) -> dict[str, Any]:  # fmt: skip
    env = {**os.environ, "WL_IDS": str(data["ids"]), "WL_AUTHORS": str(data["authors"]), "WL_TAGS": TAGS,
           "WL_ITEM": config.item, "WL_CREATE": config.create, "WL_NONCE": str(next(RUNS) % 1000),
           "WL_LIST": config.expand if workload == "expand" else config.list,
           "WL_KIND": {"expand": "list", "deep1": "item", "deep500": "item"}.get(workload, workload)}  # fmt: skip
    if config.body:
        env["WL_BODY"] = config.body
    if workload.startswith("deep") and config.deep:
        env["WL_ITEM"] = config.deep[0] if workload == "deep1" else config.deep[1]
        env["WL_IDS"] = str(data["one"])
    threads = min(2, connections)
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "--latency",
            "-s", str(LUA), f"http://{HOST}:{port}"]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 30, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr or done.stdout}")
    result = parse_wrk(done.stdout)
    result["cpu_loadgen"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return result


def measure(config: Config, procs: list[Managed], port: int, workload: str, connections: int, seconds: int,
            data: dict[str, Path], infra: dict[str, Managed], nonce: int) -> dict[str, Any]:  # fmt: skip
    """One wrk run, started on an idle system.

    CPU is counted over the run itself: what the processes spend after it on requests wrk gave
    up on is not the cost of the requests it counted (and a database reset may cut it short).
    """

    def cpu() -> dict[str, float]:
        return {"app": sum(cpu_seconds(p.pid) for p in procs if p.pid),
                **{name: cpu_seconds(p.pid) for name, p in infra.items() if p.pid}}  # fmt: skip

    with phase("drain"):
        drain([*procs, *infra.values()])  # the previous run's abandoned requests may still be running
    start = cpu()
    with phase("wrk"):
        result = run_wrk(config, workload, port, connections, seconds, data, nonce)
    end = cpu()
    per_k = 1000 / max(result["requests"], 1)
    result.update({f"cpu_{k}_per_1k": (end[k] - start[k]) * per_k for k in start})
    result["cpu_loadgen_per_1k"] = result.pop("cpu_loadgen") * per_k
    result.update(config=config.name, workload=workload, connections=connections)
    return result


def deep_page(books: int) -> int:
    return min(500, books // 20)


class FreshDatabase:
    """The database, restored from a seeded copy before every workload.

    SecantusDB executes queries one at a time and keeps executing those whose clients went away,
    so a 256-connection run of a slow workload leaves minutes of backlog; restarting it from the
    seeded data (same port: clients reconnect) gives every workload the same, idle database.
    """

    def __init__(self, tmp: Path, port: int) -> None:
        self.template, self.work, self.port = tmp / "db-template", tmp / "db", port
        self.server = DatabaseServer(self.work, port)

    @property
    def process(self) -> Managed | None:
        return self.server.process

    def seal(self) -> None:
        """Stop the seeded server and keep its data as the template."""
        self.server.stop()
        shutil.copytree(self.work, self.template)

    def close(self) -> None:
        """Kill the server: its data is thrown away, and a graceful stop waits for its backlog."""
        proc = self.server.process
        if proc is not None and proc.proc is not None:
            proc.proc.kill()
            proc.stop()

    def reset(self, infra: dict[str, Managed]) -> None:
        self.close()
        shutil.rmtree(self.work, ignore_errors=True)
        shutil.copytree(self.template, self.work)
        self.server = DatabaseServer(self.work, self.port)
        self.server.start()
        if self.server.process is not None:
            infra["db"] = self.server.process


def drain(procs: list[Managed], idle: float = 0.25, cap: float = 5.0) -> bool:
    """Wait until ``procs`` use less than ``idle`` of a core, at most ``cap`` seconds; whether they did.

    A database that queues queries (SecantusDB runs them one at a time) keeps working through
    the backlog of the last run after wrk stops; the next run must not start inside it. Working
    through a backlog keeps the database or the app near a full core; idle, they tick a few ms.
    """
    deadline = time.monotonic() + cap
    while time.monotonic() < deadline:
        before = sum(cpu_seconds(p.pid) for p in procs if p.pid)
        time.sleep(DRAIN_SAMPLE)
        if sum(cpu_seconds(p.pid) for p in procs if p.pid) - before < idle * DRAIN_SAMPLE:
            return True
    return False


def prepare(tmp: Path, books: int, infra: dict[str, Managed]) -> tuple[dict[str, str], dict[str, Path], str]:
    """Database, Redis (added to ``infra`` as they start), demo data; the environment, data files, a deep cursor."""
    fresh = FreshDatabase(tmp, free_port())
    database = fresh.server
    database.start()
    if database.process is not None:
        infra["db"] = database.process
    redis_server = redis_process(shutil.which("redis-server") or "redis-server", free_port(), tmp, tmp)
    infra["redis"] = redis_server
    redis_server.start()
    redis_server.wait_ready()
    redis_port = redis_server.argv[redis_server.argv.index("--port") + 1]
    settings: Settings = local_secret(load_settings({"MONGODB_URI": database.uri, "RESTENGINE_SEED_BOOKS": books,
                                                     "RESTENGINE_DATA_DIR": str(tmp)}, environ={}))  # fmt: skip
    prepare_database(settings, (DEMO_MODULE,), progress=False)
    env = {**os.environ, "MONGODB_URI": database.uri, "REDIS_URL": f"redis://{HOST}:{redis_port}/0",
           "RESTENGINE_SECRET_KEY": settings.secret_key or "", "RESTENGINE_WORKERS": "2",
           "RESTENGINE_THREADS": "8", "RESTENGINE_PROC_NAME": "bench"}  # fmt: skip
    with MongoClient(database.uri) as client:
        db = client.get_default_database()
        ids = [str(d["_id"]) for d in db.books.find({}, {"_id": 1}).limit(1000)]
        authors = [str(d["_id"]) for d in db.author.find({}, {"_id": 1})]
        # The cursor a client holds after walking to the deep page (page 500 of the full data set).
        before_deep = db.books.find({}, {"_id": 1}).sort("_id", 1).skip((deep_page(books) - 1) * 20 - 1)
        last = before_deep.limit(1).next()["_id"]
    cursor = CursorCodec((settings.secret_key or "").encode()).encode([("_id", 1)], [last])
    data = {"ids": tmp / "ids.txt", "authors": tmp / "authors.txt", "one": tmp / "one.txt"}
    data["ids"].write_text("\n".join(ids) + "\n")
    data["authors"].write_text("\n".join(authors) + "\n")
    data["one"].write_text("x\n")
    fresh.seal()
    FRESH.append(fresh)
    return env, data, cursor


def reconnect(config: Config, port: int, data: dict[str, Path]) -> None:
    """A few untimed GETs after a database reset, so drivers replace their dead pooled connections."""
    ids = data["ids"].read_text().split()[:20]
    for book in ids:
        conn = http.client.HTTPConnection(HOST, port, timeout=10)
        try:
            conn.request("GET", config.item.replace("{id}", book))
            conn.getresponse().read()
        except OSError:
            pass
        finally:
            conn.close()


def warm(config: Config, port: int, data: dict[str, Path], nonce: int) -> None:
    """A short run of each read workload, so caches and pools are warm before measuring.

    One second at 16 connections is hundreds of requests wherever the database is not the
    bottleneck: every worker's connections are open and every tag's first page is cached.
    """
    for workload in ("item", "list"):
        if workload in config.workloads:
            run_wrk(config, workload, port, 16, WARM_SECONDS, data, nonce)


def main(argv: list[str] | None = None) -> int:
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
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    started = time.time()
    results: list[dict[str, Any]] = []
    books = 0
    with tempfile.TemporaryDirectory(prefix="restengine-bench-") as tmpdir:
        tmp = Path(tmpdir)
        books = 2000 if quick else 10_000
        infra: dict[str, Managed] = {}
        try:
            with phase("prepare"):
                env, data, cursor = prepare(tmp, books, infra)
            chosen = configs(cursor, deep_page(books))
            if quick and not args.only:
                chosen = [
                    c for c in chosen if c.name in ("restengine gthread", "fastapi async", "empty flask (ceiling)")
                ]
            if args.only:
                wanted = args.only.split(",")
                chosen = [c for c in chosen if any(w in c.name for w in wanted)]
            for index, config in enumerate(chosen):
                begun = time.monotonic()
                results += run_config(config, tmp, env, data, infra, levels, seconds, quick, index)
                print(f"{config.name}: {time.monotonic() - begun:.0f} s", flush=True)
        except KeyboardInterrupt:
            print("interrupted: stopping everything", file=sys.stderr)
        finally:
            for fresh in FRESH:
                fresh.close()
            for proc in infra.values():
                proc.stop()
    from bench.report import write_report

    command = "python -m bench.run" + (" --quick" if quick else "") + (f" --only '{args.only}'" if args.only else "")
    meta = {
        "command": command,
        "seconds_per_run": seconds,
        "duration_s": round(time.time() - started),
        "versions": versions(),
        "date": time.strftime("%Y-%m-%d"),
        "books": books,
        "deep_page": deep_page(books),
    }
    meta["phases_s"] = {k: round(v) for k, v in PHASES.items()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    raw = RESULTS / f"run-{time.strftime('%Y%m%dT%H%M%S')}.json"
    raw.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    report, img = report_paths(quick, partial=bool(args.only))
    print(write_report(results, meta, report, img, quick=quick))
    total = time.time() - started
    print("time: " + ", ".join(f"{k} {v:.0f} s" for k, v in sorted(PHASES.items(), key=lambda kv: -kv[1]))
          + f", other {total - sum(PHASES.values()):.0f} s; {total:.0f} s in all")  # fmt: skip
    print(f"raw results: {raw.relative_to(ROOT)}; report: {report.relative_to(ROOT)}")
    return 0


def report_paths(quick: bool, partial: bool) -> tuple[Path, Path]:
    """Where the report and its plots go: only a full run of every configuration replaces the
    published ones (docs/); a quick or ``--only`` run writes beside its raw results."""
    if quick:
        return RESULTS / "quick.md", RESULTS / "img"  # a quick report has no plots
    if partial:
        return RESULTS / "partial.md", RESULTS / "img"  # the report links img/ beside itself
    return REPORT, IMG


def series(config: Config, levels: tuple[int, ...], quick: bool) -> list[tuple[str, tuple[int, ...]]]:
    """(workload, connection levels) in run order; each starts on a fresh database.

    The deep pages are two series, so page 500 is not measured inside page 1's backlog.
    """
    out: list[tuple[str, tuple[int, ...]]] = []
    for workload in config.workloads:
        if quick and workload not in ("item", "list"):
            continue
        out += [("deep1", (64,)), ("deep500", (64,))] if workload == "deep" else [(workload, levels)]
    return out


def run_config(config: Config, tmp: Path, env: dict[str, str], data: dict[str, Path], infra: dict[str, Managed],
               levels: tuple[int, ...], seconds: int, quick: bool, index: int) -> list[dict[str, Any]]:  # fmt: skip
    """Every series of one configuration, each on a fresh database (and, after a backlog, a fresh app)."""
    procs: list[Managed] = []
    port = 0
    out: list[dict[str, Any]] = []
    log = tmp / f"log-{index}"
    try:
        for number, (workload, connection_levels) in enumerate(series(config, levels, quick)):
            if number and settled([*procs, *infra.values()]):
                with phase("reset"):
                    FRESH[0].reset(infra)
                with phase("reconnect"):
                    reconnect(config, port, data)
            else:  # the first series, or the last one left a backlog that would outlast a restart
                stop_app(procs)
                log = tmp / f"log-{index}-{number}"
                procs, port = start_app(config, log, env, data, infra)
            for connections in connection_levels:
                result = measure(config, procs, port, workload, connections, seconds, data, infra, 0)
                out.append(result)
                print(f"{config.name:30} {workload:8} c={connections:<3} {result['rps']:8.0f} req/s  "
                      f"p99 {result['p99'] or 0:7.1f} ms  errors {result['non2xx'] + result['socket_errors']}",
                      flush=True)  # fmt: skip
    except Exception as exc:  # one configuration failing must not lose the others
        print(f"{config.name}: FAILED: {exc} (logs in {log})", file=sys.stderr)
        out.append({"config": config.name, "error": str(exc)})
    finally:
        stop_app(procs)
    return out


def settled(procs: list[Managed]) -> bool:
    """Whether the last series' abandoned requests finish soon enough to wait for them.

    An app keeps serving the requests wrk gave up on (gunicorn and uvicorn queue them, and a
    database reset does not stop them: the driver retries them on the fresh one); past
    ``BACKLOG_WAIT`` (eve's expand at 256 connections would take minutes) restarting it is faster.
    """
    with phase("drain"):
        return drain(procs, cap=BACKLOG_WAIT)


def start_app(config: Config, log: Path, env: dict[str, str], data: dict[str, Path],
              infra: dict[str, Managed]) -> tuple[list[Managed], int]:  # fmt: skip
    """A fresh database, then the app on it, warmed up; warm-up only reads, so the data stays as seeded."""
    log.mkdir()
    with phase("reset"):
        FRESH[0].reset(infra)
    procs: list[Managed] = []
    try:
        with phase("start"):
            procs, port = config.start(log, env)
            for proc in procs:
                if proc.proc is None:
                    proc.ready = lambda port=port: http_ok(port, config.health)
                    proc.start()
            for proc in procs:
                proc.wait_ready()
        with phase("warm"):
            warm(config, port, data, 0)
    except BaseException:
        stop_app(procs)
        raise
    return procs, port


def stop_app(procs: list[Managed]) -> None:
    """Kill the app: it is thrown away, and a graceful stop would wait for its backlog."""
    with phase("stop"):
        for proc in procs:  # the stack's processes too: they are the same objects
            proc.stop_signal = signal.SIGKILL
        while STACKS:
            STACKS.pop().stop()
        for proc in procs:
            proc.stop()


if __name__ == "__main__":
    sys.exit(main())
