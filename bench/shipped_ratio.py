"""What the shipped request checks cost a GET together: the defaults against none of them.

    .venv/bin/python -m bench.shipped_ratio [--quick] [--pairs N] [--duration S] [--connections C]
                                            [--workers W] [--threads T] [--access-log] [--uncached]

Two RestEngine instances alike but for (shipped) the rate limits counting in Redis, the Prometheus metrics,
Server-Timing and admission control, as they ship, and (bare) all four off (see ``bench.onoff`` for what runs
and how). Each has its own bench (``ratelimit_ratio``, ``metrics_ratio``); this one shows their sum, which is
what ``cache_ratio`` meets. Writes the raw figures to bench/results/shipped_ratio-<timestamp>.json. Fails
(exit 1) when any wrk run has a non-2xx response or a socket error. Needs ``wrk``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from bench import onoff

BARE = {
    "RESTENGINE_RATE_LIMIT": "off",
    "RESTENGINE_WRITE_RATE_LIMIT": "off",
    "RESTENGINE_EXPENSIVE_RATE_LIMIT": "off",
    "RESTENGINE_METRICS": "off",
    "RESTENGINE_SERVER_TIMING": "off",
    "RESTENGINE_QUEUE_BUDGET_MS": "0",
}
SIDES = {"shipped": {}, "bare": BARE}


def expect(side: str, status: int, headers: Mapping[str, str | None]) -> str | None:
    return None  # the sides differ in what they count and time, not in what a GET answers


def main(argv: list[str] | None = None) -> int:
    return onoff.main(argv, "shipped_ratio", __doc__ or "", SIDES, expect)


if __name__ == "__main__":
    sys.exit(main())
