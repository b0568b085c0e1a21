"""What credentials cost a cached item GET: with an API key and with a JWT, against no credentials.

    .venv/bin/python -m bench.auth_ratio [--quick] [--pairs N] [--duration S] [--connections C]
                                         [--workers W] [--threads T] [--access-log] [--rotate]
                                         [--max-requests N]

Starts, on free loopback ports in a temp dir: the embedded database, a redis-server, the demo
bookstore with 2,000 books, and one RestEngine gunicorn instance (gunicorn.conf.py, 2 workers × 8
gthread threads) with the access check on (RESTENGINE_AUTH=on, the default policy: everyone may
read), an HS256 JWT secret, and no access log unless --access-log. Creates an API key (role admin)
in the keys' collection and signs a JWT (sub, roles, exp in an hour). Checks one GET per side (200,
X-Cache: hit) and that a wrong key and a badly signed JWT are refused (401), warms each side with
2 s of wrk, then runs ``wrk -t2 -c<C> --latency`` on one cached book, interleaved round by round:
(anon) no credentials, (key) ``Authorization: Bearer <API key>``, (jwt) ``Authorization: Bearer
<JWT>`` (with --rotate, the order shifts by one each round). Every side goes to the same app and
the same URL, so the ratios key/anon and jwt/anon of each round are what the credential costs.
Prints every run (with the times the app logged a Redis timeout and answered from the database),
the medians, the per-round ratios and their medians (goal >= 0.90: a report, not an assertion), app
CPU per request per side, and writes the raw figures to bench/results/auth_ratio-<timestamp>.json.
Fails (exit 1) when any wrk run has a non-2xx response or a socket error. Needs ``wrk``.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import jwt

from bench.interleaved import (
    LOAD,
    WRK_COLUMNS,
    Column,
    Headers,
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
from bench.paths import ROOT
from bench.procs import Harness, gunicorn_app
from restengine.auth.keys import COLLECTION, KeyStore
from restengine.ops.processes import free_port

GOAL = 0.90
BOOKS = 2000
ROLE = "admin"
BASELINE = "anon"
SIDES = (BASELINE, "key", "jwt")
TOKEN_SECONDS = 3600  # the JWT's lifetime: longer than any run (each process re-verifies it every 5 minutes)
COLUMNS = (
    Column("round", "round", 5, "d"),
    Column("side", "target", 6, "s", left=True),
    *WRK_COLUMNS,
    Column("db cpu", "db_cpu_ms_per_1k", 9, ".0f", "ms/1k req"),
    LOAD,
    Column("redis", "redis_fallbacks", 8, "d", "timeouts"),
)
FALLBACK = "redis unavailable"  # what the app logs when it answers from the database instead (cache/backends.py)
KEYS = ("rps", "p50", "p90", "p99", "cpu_ms_per_1k", "redis_cpu_ms_per_1k", "db_cpu_ms_per_1k")


def credentials(uri: str, secret: str) -> tuple[str, str]:
    """A new API key (stored in the served database) and a JWT signed with ``secret``."""
    from pymongo import MongoClient

    client: MongoClient[dict[str, Any]] = MongoClient(uri)
    try:
        _, key = KeyStore(lambda: client.get_default_database()[COLLECTION]).create(ROLE, name="bench.auth_ratio")
    finally:
        client.close()
    claims = {"sub": "bench", "roles": [ROLE], "exp": int(time.time()) + TOKEN_SECONDS}
    return key, jwt.encode(claims, secret, algorithm="HS256")


def one_book(uri: str) -> str:
    from pymongo import MongoClient

    client: MongoClient[dict[str, Any]] = MongoClient(uri)
    try:
        doc = client.get_default_database()["books"].find_one({}, {"_id": 1}, sort=[("_id", 1)])
    finally:
        client.close()
    if doc is None:
        raise RuntimeError("no book in the seeded database")
    return str(doc["_id"])


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def check(port: int, path: str, sides: Mapping[str, Headers], refused: Mapping[str, Headers]) -> dict[str, str]:
    """One GET per side must be a 200 cache hit, and one per wrong credential a 401; what each answered."""
    seen: dict[str, str] = {}
    for side, headers in sides.items():
        status, cache = get_once(port, path, headers)
        seen[side] = f"{status} X-Cache: {cache}"
        if status != 200 or cache != "hit":
            raise RuntimeError(f"{side}: GET {path} answered {status} with X-Cache: {cache}, not a 200 hit")
    for what, headers in refused.items():
        status, _ = get_once(port, path, headers)
        seen[what] = str(status)
        if status != 401:
            raise RuntimeError(f"{what}: GET {path} answered {status}, not 401: is the access check on?")
    return seen


def strict(result: dict[str, Any], side: str, fallbacks: int) -> dict[str, Any]:
    """``result`` of a wrk run, unless it had a non-2xx response or a socket error: then fail the bench.
    ``fallbacks``: how many times the app logged that Redis was unavailable during the run (then some
    GETs were answered from the database, not the cache: the run is recorded, and flagged)."""
    if result["non2xx"] or result["socket_errors"]:
        kinds = ", ".join(f"{n} {kind}" for kind, n in result["socket_error_kinds"].items() if n) or "none"
        raise RuntimeError(f"{side}: wrk saw {result['non2xx']} non-2xx responses and {result['socket_errors']} "
                           f"socket errors ({kinds}); Redis fallbacks logged in the run: {fallbacks}")  # fmt: skip
    return {**result, "redis_fallbacks": fallbacks}


def bench(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Start everything in ``tmp`` (logs in tmp/log), check, warm, measure the rounds; stop everything."""
    measured_tree = tree()  # recycled workers import the code again: it must not change during the run
    with Harness(tmp, BOOKS) as harness:
        shared = harness.services
        secret = secrets.token_urlsafe(48)  # 64 characters: RESTENGINE_JWT_SECRET needs >= 32 bytes
        key, token = credentials(shared.database_uri, secret)
        path = f"/api/books/{one_book(shared.database_uri)}"
        # RESTENGINE_CACHE_TTL: fresh for the whole bench, so every measured GET is a hit.
        env = shared.env(workers=args.workers, threads=args.threads, RESTENGINE_CACHE_TTL="3600",
                         RESTENGINE_AUTH="on", RESTENGINE_JWT_SECRET=secret)  # fmt: skip
        for inherited in (
            "RESTENGINE_POLICY",
            "RESTENGINE_JWKS_URL",
            "RESTENGINE_JWT_AUDIENCE",
            "RESTENGINE_JWT_ISSUER",
        ):
            env.pop(inherited, None)  # the default policy, and nothing a token would fail on
        port = free_port()
        env["RESTENGINE_ACCESS_LOG"] = "on" if args.access_log else "off"  # the configuration reads it
        options: tuple[str, ...] = ()
        if args.max_requests is not None:
            options = (*options, "--max-requests", str(args.max_requests))
        app = gunicorn_app("restengine", port, env, harness.log_dir, "restengine.wsgi:app", "/healthz", options)
        harness.start([app])
        assert app.pid is not None

        sides: dict[str, Headers] = {BASELINE: {}, "key": bearer(key), "jwt": bearer(token)}
        wrong_key = f"{key.rsplit('_', 1)[0]}_{secrets.token_urlsafe(32)}"  # the key's id, another secret
        forged = jwt.encode(jwt.decode(token, options={"verify_signature": False}), secrets.token_urlsafe(48))
        refused = {"wrong key": bearer(wrong_key), "forged jwt": bearer(forged)}
        get_once(port, path)  # a miss fills the cache
        checks = {"before": check(port, path, sides, refused)}

        fallbacks = LogLines(app.log_path, FALLBACK)

        def run(side: str, seconds: int) -> dict[str, Any]:
            headers = [f"{name}: {value}" for name, value in sides[side].items()]
            fallbacks.new()
            result = wrk(port, path, connections=args.connections, seconds=seconds, headers=headers)
            return strict(result, side, fallbacks.new())

        print(f"GET {path}: {checks['before']}\nwarming: 2 s of wrk per side", flush=True)
        for side in SIDES:
            run(side, 2)
        print(f"\n{header(COLUMNS)}", flush=True)
        runs = []
        for round_ in range(1, args.pairs + 1):
            for side in order(round_, args.rotate):
                result = measured(partial(run, side, args.duration), app.pid, harness.pids(), round=round_,
                                  target=side)  # fmt: skip
                print(row(result, COLUMNS), flush=True)
                runs.append(result)
        checks["after"] = check(port, path, sides, refused)
        after = tree()
        if after != measured_tree:
            measured_tree["changed_during_run"] = after
        return {"path": path, "runs": runs, "summary": summarize(runs), "checks": checks, "tree": measured_tree}


def order(round_: int, rotate: bool) -> tuple[str, ...]:
    """The sides in the order round ``round_`` runs them: always anon key jwt, or with ``rotate`` shifted
    by one each round (anon key jwt, key jwt anon, jwt anon key, …), so no side always runs first."""
    shift = (round_ - 1) % len(SIDES) if rotate else 0
    return SIDES[shift:] + SIDES[:shift]


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    mid = medians(runs, SIDES, KEYS)
    out: dict[str, Any] = {"medians": mid, "goal": GOAL, "ratios": {}}
    for side in SIDES[1:]:
        rounds = round_ratios(runs, side, BASELINE)
        cpu = round_ratios(runs, side, BASELINE, "cpu_ms_per_1k")
        ratio = statistics.median(rounds)
        out["ratios"][side] = {"rounds": rounds, "median": ratio, "verdict": "PASS" if ratio >= GOAL else "BELOW",
                               "cpu_rounds": cpu, "cpu_median": statistics.median(cpu)}  # fmt: skip
    out["verdict"] = "PASS" if all(r["verdict"] == "PASS" for r in out["ratios"].values()) else "BELOW"
    return out


def tree() -> dict[str, Any]:
    """The commit checked out, and which source files differ from it (others may edit the tree)."""

    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False)
        return done.stdout

    changed = [line[3:] for line in git("status", "--porcelain", "--", "src").splitlines() if line.strip()]
    return {"commit": git("rev-parse", "HEAD").strip(), "src_changed": changed}


def report(result: dict[str, Any]) -> None:
    s = result["summary"]
    mid = s["medians"]
    print("\nmedian  " + ", ".join(f"{side} {mid[side]['rps']:.0f} req/s (p99 {mid[side]['p99']:.2f} ms)"
                                   for side in SIDES))  # fmt: skip
    print("app CPU per request, median: " + ", ".join(f"{side} {mid[side]['cpu_ms_per_1k'] / 1000:.3f} ms"
                                                      for side in SIDES))  # fmt: skip
    for side, r in s["ratios"].items():
        rounds = ", ".join(f"{x:.2f}" for x in r["rounds"])
        print(f"ratio {side}/{BASELINE} req/s: {r['median']:.2f} (rounds: {rounds})  goal >= {GOAL:.2f}: "
              f"{r['verdict']};  app CPU per request {side}/{BASELINE}: {r['cpu_median']:.2f}")  # fmt: skip
    print(f"verdict: {s['verdict']}")
    flagged = [f"round {r['round']} {r['target']}" for r in result["runs"] if r["redis_fallbacks"]]
    if flagged:
        print(f"warning: Redis timed out (some GETs answered from the database) in: {', '.join(flagged)}")
    if result["tree"]["src_changed"]:
        print(f"note: measured with uncommitted changes in {', '.join(result['tree']['src_changed'])}")
    if "changed_during_run" in result["tree"]:
        print("warning: the commit or the source files changed during the run (recycled workers load the new code)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.auth_ratio", description=__doc__.split("\n\n")[0])
    add_options(parser, what="rounds")
    parser.add_argument("--access-log", action="store_true", help="keep gunicorn's access log on (default: off)")
    parser.add_argument("--rotate", action="store_true", help="shift the sides' order by one each round")
    recycle = "gunicorn's max_requests (default: the configuration's, 0 since issue 14: workers are not recycled)"
    parser.add_argument("--max-requests", type=int, metavar="N", help=recycle)
    args = resolve(parser.parse_args(argv))
    config = vars(args) | {"books": BOOKS, "wrk_threads": 2, "auth": "on", "role": ROLE, "sides": list(SIDES)}
    return run_command("auth_ratio", args, bench, report, config)


if __name__ == "__main__":
    sys.exit(main())
