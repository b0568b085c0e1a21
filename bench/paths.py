"""Where the benchmarks run from and write to."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository root: every process starts here
SCRIPTS = ROOT / "bench" / "wrk"  # wrk's Lua scripts
RESULTS = ROOT / "bench" / "results"  # raw figures and unpublished reports (git ignores it)
