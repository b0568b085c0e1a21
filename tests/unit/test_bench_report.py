"""The benchmark's arithmetic: wrk parsing, ratios and the report (synthetic figures, no run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.measure import parse_wrk
from bench.report import ratios, write_report

WRK = """Running 2s test @ http://127.0.0.1:8000
  2 threads and 64 connections
  Latency Distribution
     50%    5.12ms
     90%   10.50ms
     99%    1.20s
  2400 requests in 2.00s, 1.00MB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:   1200.00
"""


def test_wrk_output_is_parsed() -> None:
    result = parse_wrk(WRK)
    assert result["rps"] == 1200.0 and result["requests"] == 2400
    assert (result["p50"], result["p90"], result["p99"]) == (5.12, 10.5, 1200.0)
    assert (result["non2xx"], result["socket_errors"]) == (7, 3)


def run(config: str, workload: str, rps: float, connections: int = 64, **extra: Any) -> dict[str, Any]:
    return {"config": config, "workload": workload, "connections": connections, "rps": rps, "requests": 100,
            "p50": 10.0, "p99": 30.0, "non2xx": 0, "socket_errors": 0, "cpu_app_per_1k": 1.0,
            "cpu_loadgen_per_1k": 0.1, **extra}  # fmt: skip


RESULTS = [
    run("restengine gthread", "item", 900),
    run("restengine gthread", "list", 300),
    run("restengine gthread", "mix", 500),
    run("restengine gthread", "item", 800, connections=256, p50=20.0, p99=200.0),
    run("restengine gthread no cache", "item", 400, cpu_app_per_1k=1.5),
    run("restengine gthread no cache", "deep1", 100),
    run("restengine gthread no cache", "deep500", 90),
    run("fastapi async", "item", 1000),
    run("fastapi async", "list", 200),
    run("empty flask (ceiling)", "item", 1000),
    run("raw pymongo (ceiling)", "item", 500, cpu_app_per_1k=1.0),
    run("legacy flask dev server", "mix", 50),
]


def test_ratios_compare_the_right_runs() -> None:
    measured = {goal: value for goal, value, _, _ in ratios(RESULTS)}
    assert measured["item GET ≥ 1.0× FastAPI + async PyMongo (64 conn., cached)"] == 0.9
    assert measured["app CPU per item GET ≤ 1.2× raw PyMongo endpoint (cache off)"] == 1.5
    assert measured["cached item GET ≥ 0.8× empty endpoint"] == 0.9
    assert measured["list GET ≥ 1.0× FastAPI + async PyMongo (cached)"] == 1.5
    assert measured["p99 ≤ 5× p50 at 256 conn. with zero errors (cached item GET)"] == 10.0
    assert round(measured["cursor page 500 ≤ 1.2× page 1 (latency, cache off)"] or 0, 3) == round(100 / 90, 3)
    assert measured["90/10 mix ≥ 5× naive legacy deployment"] == 10.0


def test_a_run_that_completed_nothing_is_not_a_ratio() -> None:
    empty = [*RESULTS[:-1], run("legacy flask dev server", "mix", 0.0, requests=0)]
    measured = {goal: value for goal, value, _, _ in ratios(empty)}
    assert measured["90/10 mix ≥ 5× naive legacy deployment"] is None


def test_report_has_tables_and_verdicts(tmp_path: Path) -> None:
    meta = {"command": "python -m bench.run --quick", "seconds_per_run": 2, "duration_s": 60,
            "versions": {"python": "3.11"}, "date": "2026-11-21", "deep_page": 500}  # fmt: skip
    text = write_report(RESULTS, meta, tmp_path / "report.md", tmp_path / "img", quick=True)
    assert "cached item GET ≥ 0.8× empty endpoint: **0.90** — met" in text
    assert "p99 ≤ 5× p50 at 256 conn. with zero errors (cached item GET): **10.00** — NOT met" in text
    report = (tmp_path / "report.md").read_text()
    assert "| restengine gthread | 900 (30) |" in report
    assert "page 500 req/s" in report


def test_only_a_full_run_replaces_the_published_report() -> None:
    from bench.paths import RESULTS
    from bench.report import IMG, REPORT, report_paths

    assert report_paths(quick=False, partial=False) == (REPORT, IMG)
    for quick, partial in ((True, False), (False, True), (True, True)):
        report, img = report_paths(quick, partial)
        assert report.parent == RESULTS and img.parent == RESULTS


def test_the_full_run_covers_every_workload_and_level() -> None:
    from bench.configs import configs, series

    levels = (1, 16, 64, 256)
    chosen = {c.name: c for c in configs("cursor", 500)}
    assert len(chosen) == 12
    plan = series(chosen["restengine gthread no cache"], levels, quick=False)
    five = [(w, levels) for w in ("item", "list", "expand", "create", "mix")]
    assert plan == [*five, ("deep1", (64,)), ("deep500", (64,))]  # page 500 on its own fresh database
    assert sum(len(ls) for c in chosen.values() for _, ls in series(c, levels, quick=False)) == 218
    assert series(chosen["fastapi async"], (64,), quick=True) == [("item", (64,)), ("list", (64,))]
