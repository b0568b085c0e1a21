"""What the rate limiter costs a GET: the limiter on (counting in Redis, never refusing) against off.

    .venv/bin/python -m bench.ratelimit_ratio [--quick] [--pairs N] [--duration S] [--connections C]
                                              [--workers W] [--threads T] [--access-log] [--uncached]

Two RestEngine instances alike but for the limiter (see ``bench.onoff`` for what runs and how): (on)
``RESTENGINE_RATE_LIMIT`` at a rate no run reaches, so every request is counted and answered with the
RateLimit fields; (off) ``RESTENGINE_RATE_LIMIT=off`` and ``RESTENGINE_WRITE_RATE_LIMIT=off``, no limiter at
all. One cached book by default. Writes the raw figures to bench/results/ratelimit_ratio-<timestamp>.json.
Fails (exit 1) when any wrk run has a non-2xx response or a socket error. Needs ``wrk``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from bench import onoff
from bench.procs import UNREFUSED

SIDES = {
    "on": {"RESTENGINE_RATE_LIMIT": UNREFUSED, "RESTENGINE_WRITE_RATE_LIMIT": UNREFUSED},
    "off": {"RESTENGINE_RATE_LIMIT": "off", "RESTENGINE_WRITE_RATE_LIMIT": "off"},
}


def expect(side: str, status: int, headers: Mapping[str, str | None]) -> str | None:
    """The RateLimit fields on the ``on`` side only."""
    if ("ratelimit" in headers) != (side == "on"):
        return f"RateLimit: {headers.get('ratelimit')}"
    return None


def main(argv: list[str] | None = None) -> int:
    return onoff.main(argv, "ratelimit_ratio", __doc__ or "", SIDES, expect)


if __name__ == "__main__":
    sys.exit(main())
