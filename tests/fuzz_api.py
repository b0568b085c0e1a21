"""Schemathesis against the live service: gunicorn on the real database server, loopback only.

    ./dev fuzz                          # the longer run: 100 examples per operation, a random seed
    ./dev fuzz --examples 20 --seed 1   # shorter, reproducible

Serves the demo bookstore and the legacy-style test models (every field type
RestEngine maps) from one gunicorn on a free port, on a seeded database, and
runs ``st run`` against its ``/openapi.json``. The checks are those that say
the service keeps its own spec: no 5xx, only documented status codes, content
types and headers, and bodies that validate against the response schemas; an
undeclared method must get 405, a missing required header a 4xx. The test
suite runs a short, seeded version of this (tests/e2e/test_fuzz.py).
Exits with schemathesis's exit code; the JSON report is kept when asked for.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from restengine.ops.dbserver import DatabaseServer
from restengine.ops.processes import free_port
from restengine.ops.stack import gunicorn_process
from tests.keys import TEST_SECRET

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = "restengine.demo.bookstore,tests.legacy_models"
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "unsupported_method",
    "missing_required_header",
)
PHASES = "examples,coverage,fuzzing,stateful"


@dataclasses.dataclass
class Outcome:
    exit_code: int
    report: dict[str, Any]
    output: str

    @property
    def generated(self) -> int:
        return int(self.report.get("test_cases", {}).get("generated", 0))

    @property
    def failures(self) -> list[Any]:
        return list(self.report.get("failures", [])) + list(self.report.get("errors", []))


def fuzz(mongodb_uri: str, work: Path, *, examples: int, seed: int | None, phases: str = PHASES,
         max_time: int | None = None) -> Outcome:  # fmt: skip
    """Seed ``mongodb_uri``, serve it with gunicorn and run schemathesis against it; everything stopped after."""
    env = {**os.environ, "MONGODB_URI": mongodb_uri, "RESTENGINE_DOCUMENTS": DOCUMENTS,
           "RESTENGINE_WORKERS": "2", "RESTENGINE_THREADS": "4", "RESTENGINE_SEED_BOOKS": "200"}  # fmt: skip
    env.setdefault("RESTENGINE_SECRET_KEY", TEST_SECRET)
    subprocess.run([sys.executable, "-m", "restengine.ops.cli", "seed"], env=env, cwd=ROOT, check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    port = free_port()
    server = gunicorn_process("fuzz-gunicorn", port, env, work)
    server.argv = [*server.argv, "restengine.wsgi:app"]
    report_path = work / "schemathesis.json"
    argv = [str(Path(sys.executable).with_name("st")), "run", f"http://127.0.0.1:{port}/openapi.json",
            "--checks", ",".join(CHECKS), "--phases", phases, "--max-examples", str(examples),
            # one worker: hypothesis's lambda-source cache is not thread-safe (spurious "Runtime Error")
            "--workers", "1", "--request-timeout", "10", "--no-color",
            "--report", "json", "--report-json-path", str(report_path)]  # fmt: skip
    if seed is not None:
        argv += ["--seed", str(seed)]
    if max_time is not None:
        argv += ["--max-time", str(max_time)]
    server.start()
    try:
        server.wait_ready()
        done = subprocess.run(argv, cwd=work, capture_output=True, text=True, check=False,
                              timeout=(max_time or 900) + 120, env={**os.environ, "NO_COLOR": "1"})  # fmt: skip
    finally:
        server.stop()
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return Outcome(done.returncode, report, done.stdout + done.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=100, help="test cases per operation and phase (100)")
    parser.add_argument("--seed", type=int, default=None, help="schemathesis seed (default: random)")
    parser.add_argument("--max-time", type=int, default=None, help="time budget in seconds for the whole run")
    parser.add_argument("--report", type=Path, default=None, help="keep schemathesis's JSON report here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="restengine-fuzz-") as tmp:
        work = Path(tmp)
        uri = os.environ.get("MONGODB_URI")
        server = None
        if uri is None:
            server = DatabaseServer(work / "db", free_port())
            server.start()
            uri = server.uri
        try:
            outcome = fuzz(uri, work, examples=args.examples, seed=args.seed, max_time=args.max_time)
        finally:
            if server is not None:
                server.stop()
        if args.report is not None and (work / "schemathesis.json").exists():
            shutil.copy(work / "schemathesis.json", args.report)
    print(outcome.output)
    print(f"{outcome.generated} test cases, {len(outcome.failures)} failures or errors, exit {outcome.exit_code}")
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(main())
