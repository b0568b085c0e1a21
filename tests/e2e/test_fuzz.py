"""Schemathesis against gunicorn on the real database server: a short, seeded run of tests/fuzz_api.py."""

from __future__ import annotations

from pathlib import Path

from tests.fuzz_api import fuzz


def test_the_live_service_keeps_its_openapi_spec(tmp_path: Path, mongodb_uri: str) -> None:
    outcome = fuzz(mongodb_uri, tmp_path, examples=5, seed=20261121, phases="coverage,fuzzing,stateful")
    summary = outcome.output[-6000:]
    assert outcome.report, f"schemathesis wrote no report:\n{summary}"
    assert outcome.report["operations"]["tested"] >= 40, outcome.report["operations"]
    assert outcome.generated >= 500, f"only {outcome.generated} test cases"
    assert not outcome.failures, summary
    assert outcome.exit_code == 0, summary
