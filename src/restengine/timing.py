"""``Server-Timing`` on the API's answers: where the time of one request went, as browsers' devtools and
``curl -v`` show it::

    Server-Timing: cache;dur=0.12, db;dur=1.48, app;dur=2.35

``cache`` is the time spent looking in (and filling) the response cache, ``db`` the time of the database
commands the request ran (as the driver measured them), ``app`` the whole request in the app, from the
outermost layer until the status line. ``RESTENGINE_SERVER_TIMING=off`` leaves the field out (for operators
who keep timings private). The figures are collected per request in the thread serving it (a greenlet under
gevent), by the driver's command listener and the cache's two entry points.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

_local = threading.local()


class Spent:
    """Seconds one request spent in the cache and in database commands so far."""

    __slots__ = ("cache", "db")

    def __init__(self) -> None:
        self.cache = 0.0
        self.db = 0.0


def current() -> Spent | None:
    spent: Spent | None = getattr(_local, "spent", None)
    return spent


def add_db(seconds: float) -> None:
    """Count a database command's time to the request this thread serves (if it is timed)."""
    spent = current()
    if spent is not None:
        spent.db += seconds


@contextmanager
def in_cache() -> Iterator[None]:
    """Count the block's time as cache time, less the database time spent inside it (a miss builds the entry)."""
    spent = current()
    if spent is None:
        yield
        return
    started, db_before = time.perf_counter(), spent.db
    try:
        yield
    finally:
        spent.cache += time.perf_counter() - started - (spent.db - db_before)


class ServerTiming:
    """WSGI layer: ``Server-Timing`` on every answer of the API (under ``url_prefix``)."""

    def __init__(self, wsgi_app: WSGIApplication, url_prefix: str) -> None:
        self.wsgi_app = wsgi_app
        self.prefix = url_prefix

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if not (path == self.prefix or path.startswith(self.prefix + "/")):
            return self.wsgi_app(environ, start_response)
        spent = _local.spent = Spent()
        started = time.perf_counter()

        def timed(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            app = time.perf_counter() - started
            field = f"cache;dur={spent.cache * 1000:.2f}, db;dur={spent.db * 1000:.2f}, app;dur={app * 1000:.2f}"
            return start_response(status, [*headers, ("Server-Timing", field)], exc_info)

        try:
            return self.wsgi_app(environ, timed)
        finally:
            _local.spent = None
