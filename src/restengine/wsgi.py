"""The WSGI entry point gunicorn loads: ``restengine.wsgi:app``."""

from __future__ import annotations

from restengine.app import create_app

app = create_app()
