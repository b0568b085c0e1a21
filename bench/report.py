"""Tables, plots and the project's performance ratios from ``bench.run``'s results, and where they go.

.venv/bin/python -m bench.report bench/results/run-<timestamp>.json   # redo a run's report and plots
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.paths import RESULTS, ROOT

REPORT, IMG = ROOT / "docs" / "benchmarks-peers.md", ROOT / "docs" / "img"  # published by a full run only
WORKLOADS = {
    "item": "GET an item by random id",
    "list": "GET a list (indexed tag filter, 20 items)",
    "expand": "GET the same list with expand=author",
    "create": "POST create",
    "mix": "90 % item GET / 10 % POST",
}
CACHED = "restengine gthread"
UNCACHED = "restengine gthread no cache"


def _find(results: list[dict[str, Any]], config: str, workload: str, connections: int = 64) -> dict[str, Any] | None:
    for r in results:
        if r.get("config") == config and r.get("workload") == workload and r.get("connections") == connections:
            return r
    return None


def ratios(results: list[dict[str, Any]]) -> list[tuple[str, float | None, float, bool]]:
    """(goal, measured value, threshold, higher is better) for every performance goal."""

    def rps(config: str, workload: str, connections: int = 64) -> float | None:
        r = _find(results, config, workload, connections)
        return r["rps"] if r else None

    def div(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    cpu = _find(results, UNCACHED, "item")
    raw = _find(results, "raw pymongo (ceiling)", "item")
    tail = _find(results, CACHED, "item", 256)
    p99_ratio = None
    if tail and tail.get("p50") and tail.get("p99"):
        p99_ratio = tail["p99"] / tail["p50"] if tail["non2xx"] + tail["socket_errors"] == 0 else float("inf")
    return [
        ("item GET ≥ 1.0× FastAPI + async PyMongo (64 conn., cached)",
         div(rps(CACHED, "item"), rps("fastapi async", "item")), 1.0, True),
        ("item GET ≥ 1.0× FastAPI + async PyMongo (64 conn., cache off)",
         div(rps(UNCACHED, "item"), rps("fastapi async", "item")), 1.0, True),
        ("app CPU per item GET ≤ 1.2× raw PyMongo endpoint (cache off)",
         div(cpu["cpu_app_per_1k"] if cpu else None, raw["cpu_app_per_1k"] if raw else None), 1.2, False),
        ("cached item GET ≥ 0.8× empty endpoint",
         div(rps(CACHED, "item"), rps("empty flask (ceiling)", "item")), 0.8, True),
        ("list GET ≥ 1.0× FastAPI + async PyMongo (cached)", div(rps(CACHED, "list"), rps("fastapi async", "list")),
         1.0, True),
        ("list GET ≥ 1.0× FastAPI + async PyMongo (cache off)",
         div(rps(UNCACHED, "list"), rps("fastapi async", "list")), 1.0, True),
        ("p99 ≤ 5× p50 at 256 conn. with zero errors (cached item GET)", p99_ratio, 5.0, False),
        ("cursor page 500 ≤ 1.2× page 1 (latency, cache off)",
         div(rps(UNCACHED, "deep1"), rps(UNCACHED, "deep500")), 1.2, False),
        ("90/10 mix ≥ 5× naive legacy deployment", div(rps(CACHED, "mix"), rps("legacy flask dev server", "mix")),
         5.0, True),
    ]  # fmt: skip


def ratio_lines(results: list[dict[str, Any]]) -> list[str]:
    lines = []
    for goal, value, threshold, higher in ratios(results):
        if value is None:
            lines.append(f"- {goal}: not measured")
            continue
        ok = value >= threshold if higher else value <= threshold
        lines.append(f"- {goal}: **{value:.2f}** — {'met' if ok else 'NOT met'}")
    return lines


def _table(results: list[dict[str, Any]], workload: str, levels: list[int]) -> list[str]:
    configs = sorted({r["config"] for r in results if r.get("workload") == workload}, key=_order(results))
    head = "| configuration | " + " | ".join(f"{c} conn. req/s (p99 ms)" for c in levels) + " | errors |"
    lines = [head, "|---" * (len(levels) + 2) + "|"]
    for config in configs:
        cells, errors = [], 0
        for level in levels:
            r = _find(results, config, workload, level)
            if r is None:
                cells.append("—")
                continue
            errors += r["non2xx"] + r["socket_errors"]
            cells.append(f"{r['rps']:,.0f} ({r['p99'] or 0:.0f})")
        lines.append(f"| {config} | " + " | ".join(cells) + f" | {errors} |")
    return lines


def _order(results: list[dict[str, Any]]) -> Callable[[str], int]:
    names = list(dict.fromkeys(r["config"] for r in results))
    return names.index


def _cpu_table(results: list[dict[str, Any]], workload: str) -> list[str]:
    lines = ["| configuration | app | database | redis | wrk |", "|---|---|---|---|---|"]
    for r in results:
        if r.get("workload") == workload and r.get("connections") == 64:
            lines.append(
                f"| {r['config']} | {r['cpu_app_per_1k']:.2f} | {r.get('cpu_db_per_1k', 0):.2f} | "
                f"{r.get('cpu_redis_per_1k', 0):.2f} | {r['cpu_loadgen_per_1k']:.2f} |"
            )
    return lines


def plots(results: list[dict[str, Any]], img: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img.mkdir(parents=True, exist_ok=True)
    plt.rcParams["axes.prop_cycle"] = plt.cycler(color=plt.get_cmap("tab20").colors)  # 11+ distinct lines
    written = []
    for workload in WORKLOADS:
        rows = [r for r in results if r.get("workload") == workload]
        if not rows:
            continue
        fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
        for config in sorted({r["config"] for r in rows}, key=_order(results)):
            points = sorted((r["connections"], r["rps"], r["p99"] or 0) for r in rows if r["config"] == config)
            left.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=config)
            right.plot([p[0] for p in points], [p[2] for p in points], marker="o", label=config)
        for axis, label in ((left, "requests/s"), (right, "p99 latency (ms)")):
            axis.set_xscale("log", base=2)
            axis.set_xlabel("connections")
            axis.set_ylabel(label)
            axis.grid(True, alpha=0.3)
        right.set_yscale("log")
        left.legend(fontsize=7)
        fig.suptitle(WORKLOADS[workload])
        fig.tight_layout()
        path = img / f"bench-{workload}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written


def write_report(results: list[dict[str, Any]], meta: dict[str, Any], report: Path, img: Path, *, quick: bool) -> str:
    """Write the markdown report (and the plots); return the ratios as text."""
    good = [r for r in results if "error" not in r]
    levels = sorted({r["connections"] for r in good if r["workload"] in WORKLOADS})
    lines = [
        "# RestEngine against its peers",
        "",
        f"Command: `{meta['command']}` ({meta['seconds_per_run']} s per run, {meta['duration_s']} s in all), "
        f"{meta['date']}. Generated by `bench/report.py`; the reading is in `docs/benchmarks.md`.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        "",
        "## Ratios (the project's goals; a report, not assertions)",
        "",
        *ratio_lines(good),
        "",
    ]
    failed = [r for r in results if "error" in r]
    if failed:
        lines += ["Configurations that failed to run: " + "; ".join(f"{r['config']}: {r['error']}" for r in failed), ""]
    for workload, title in WORKLOADS.items():
        if any(r["workload"] == workload for r in good):
            lines += [f"## {title}", "", *_table(good, workload, levels), ""]
            if not quick:
                lines += [f"![{title}](img/bench-{workload}.png)", ""]
    deep = [r for r in good if r["workload"] in ("deep1", "deep500")]
    if deep:
        lines += [
            "## Deep pages (64 connections)",
            "",
            "| configuration | page 1 req/s | page 500 req/s |",
            "|---|---|---|",
        ]
        for config in sorted({r["config"] for r in deep}, key=_order(results)):
            one, five = _find(good, config, "deep1"), _find(good, config, "deep500")
            lines.append(f"| {config} | {one['rps'] if one else 0:,.0f} | {five['rps'] if five else 0:,.0f} |")
        lines.append("")
    lines += ["## CPU seconds per 1,000 item GETs at 64 connections", "", *_cpu_table(good, "item"), ""]
    if not quick:
        plots(good, img)
    report.write_text("\n".join(lines))
    return "\n".join(["Ratios:", *ratio_lines(good)])


def report_paths(quick: bool, partial: bool) -> tuple[Path, Path]:
    """Where the report and its plots go: only a full run of every configuration replaces the
    published ones (docs/); a quick or ``--only`` run writes beside its raw results."""
    if quick:
        return RESULTS / "quick.md", RESULTS / "img"  # a quick report has no plots
    if partial:
        return RESULTS / "partial.md", RESULTS / "img"  # the report links img/ beside itself
    return REPORT, IMG


def main(argv: list[str]) -> int:
    """Redo the report and plots of the run saved at ``argv[0]``, where that run wrote them."""
    saved = json.loads(Path(argv[0]).read_text())
    command = saved["meta"]["command"]
    quick = "--quick" in command
    target, img = report_paths(quick, partial="--only" in command)
    print(write_report(saved["results"], saved["meta"], target, img, quick=quick))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
