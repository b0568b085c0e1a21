"""Logs as one JSON object per line, for log pipelines (``RESTENGINE_LOG_FORMAT=json``); plain text otherwise.

The formatter is python-json-logger's: every record becomes ``{"time", "level", "logger", "message", …}``
plus the fields it was given. gunicorn's configuration uses :func:`gunicorn_logconfig` (its own lines and the
app's), the command line :func:`configure`. In JSON, gunicorn's access log (a format string, not fields) is
replaced by :class:`AccessLog`, the app's own line per request: ``request_id``, ``method``, ``route``
(the route template, never the raw path), ``path``, ``status``, ``duration_ms``, ``client`` and the caller's
``subject`` — never a credential.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from restengine.constants import REQUEST_ID_HEADER

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"
RENAMED = {"asctime": "time", "levelname": "level", "name": "logger"}
PRINCIPAL = "restengine.principal"  # WSGI environ key of the access check's Principal (restengine.api.access)
access_log = logging.getLogger("restengine.access")


def json_formatter() -> logging.Formatter:
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter(JSON_FIELDS, rename_fields=RENAMED)


def configure(log_format: str, level: str = "INFO") -> None:
    """Log this process (the command line) to stderr as ``log_format`` says."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(json_formatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def gunicorn_logconfig(level: str) -> dict[str, Any]:
    """gunicorn's ``logconfig_dict`` for JSON: its error log and every other logger, one JSON object a line."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}
    quiet = {"level": level.upper(), "handlers": ["json"], "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": "pythonjsonlogger.json.JsonFormatter", "fmt": JSON_FIELDS, "rename_fields": RENAMED}
        },
        "handlers": {"json": handler},
        "root": {"level": level.upper(), "handlers": ["json"]},
        "loggers": {
            "gunicorn.error": quiet,
            "gunicorn.access": {**quiet, "level": "INFO"},
            "restengine.access": {**quiet, "level": "INFO"},
        },
    }


class AccessLog:
    """WSGI layer, outermost: one log record per request, with its fields (see the module)."""

    def __init__(self, wsgi_app: WSGIApplication, route_of: Callable[[WSGIEnvironment], str]) -> None:
        self.wsgi_app = wsgi_app
        self.route_of = route_of

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        seen: dict[str, str] = {}

        def recording(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seen["status"] = status[:3]
            for name, value in headers:
                if name == REQUEST_ID_HEADER:
                    seen["request_id"] = value
            return start_response(status, headers, exc_info)

        try:
            return self.wsgi_app(environ, recording)
        finally:
            principal = environ.get(PRINCIPAL)
            subject = getattr(principal, "subject", None)
            route = self.route_of(environ)
            status = seen.get("status", "500")
            method = environ.get("REQUEST_METHOD", "")
            access_log.info(
                "%s %s %s",
                method,
                route,
                status,
                extra={
                    "request_id": seen.get("request_id"),
                    "method": method,
                    "route": route,
                    "path": environ.get("PATH_INFO", ""),
                    "status": int(status) if status.isdigit() else status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "client": environ.get("REMOTE_ADDR"),
                    "subject": subject,
                },
            )
