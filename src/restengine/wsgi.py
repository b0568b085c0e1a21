"""The WSGI entry point gunicorn loads: ``restengine.wsgi:app``.

An invalid configuration stops the process with one line naming the setting (exit status 2), not a
traceback: with the app preloaded, gunicorn's master builds it before any of its hooks run.
"""

from __future__ import annotations

import sys

from restengine.app import create_app
from restengine.config import ConfigError

try:
    app = create_app()
except ConfigError as exc:
    print(f"invalid configuration: {exc}", file=sys.stderr, flush=True)
    raise SystemExit(2) from None
