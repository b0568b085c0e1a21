"""What the metrics cost a GET: Prometheus metrics on (the default) against off.

    .venv/bin/python -m bench.metrics_ratio [--quick] [--pairs N] [--duration S] [--connections C]
                                            [--workers W] [--threads T] [--access-log] [--uncached]

Two RestEngine instances alike but for ``RESTENGINE_METRICS`` (see ``bench.onoff`` for what runs and how):
(on) every request's duration, the pool's and the commands' events measured, in prometheus_client's
multiprocess files; (off) nothing measured. ``Server-Timing`` stays on for both (its own setting). One
cached book by default, ``--uncached`` for the database read every GET. Goal: on/off >= 0.95. Writes the raw
figures to bench/results/metrics_ratio-<timestamp>.json. Fails (exit 1) when any wrk run has a non-2xx
response or a socket error. Needs ``wrk``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from bench import onoff

SIDES = {"on": {"RESTENGINE_METRICS": "on"}, "off": {"RESTENGINE_METRICS": "off"}}


def expect(side: str, status: int, headers: Mapping[str, str | None]) -> str | None:
    return None  # /metrics is checked below, once the apps run


def main(argv: list[str] | None = None) -> int:
    return onoff.main(argv, "metrics_ratio", __doc__ or "", SIDES, expect, scrape="/metrics")


if __name__ == "__main__":
    sys.exit(main())
