"""Admission control: a request that waited too long for a thread is refused at once, not served late.

gunicorn's gthread worker hands each request to a thread pool with an
unbounded queue. When every thread is busy (a slow database, a burst), new
requests wait in it, and past a point each one waits longer than its client
will, then takes a thread to do work nobody reads. RestEngine's worker
(:class:`restengine.ops.worker.ThreadWorker`) records how long each request
waited in that queue; :class:`Admission`, the outermost WSGI layer, answers
one that waited more than ``RESTENGINE_QUEUE_BUDGET_MS`` with a ``503`` and
``Retry-After`` straight away, which also empties the queue at the speed of
a refusal. ``/healthz`` and ``/readyz`` are always answered: a load balancer
must see a worker that is busy, not one that is dead.

Outside that worker (gevent, the Flask test client, another server) nothing
records a wait and nothing is refused.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from restengine import metrics
from restengine.errors import ServiceUnavailable, refuse

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

ALWAYS = frozenset({"/healthz", "/readyz", "/metrics"})  # answered whatever the wait: a busy worker is seen

_waits = threading.local()


def waited(seconds: float | None) -> None:
    """Record (in the thread about to serve a request) how long it waited for that thread; ``None``: forget."""
    _waits.seconds = seconds


def wait() -> float | None:
    """How long the request this thread serves waited for it, when the worker recorded it."""
    seconds: float | None = getattr(_waits, "seconds", None)
    return seconds


class Admission:
    """WSGI layer: refuse with a 503 a request that waited more than ``budget`` seconds for its thread."""

    def __init__(self, wsgi_app: WSGIApplication, budget: float, retry_after: int) -> None:
        self.wsgi_app = wsgi_app
        self.budget = budget
        self.retry_after = retry_after
        self.refused = 0  # requests refused by this process

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        seconds = wait()
        if seconds is None or seconds <= self.budget or environ.get("PATH_INFO") in ALWAYS:
            return self.wsgi_app(environ, start_response)
        self.refused += 1
        metrics.refused("shed")
        problem = ServiceUnavailable(
            f"The server is busy: this request waited {seconds * 1000:.0f} ms for a free thread (the budget is "
            f"{self.budget * 1000:.0f} ms); retry later.",
            title="Server busy",
            type="urn:restengine:problem:server-busy",
            headers={"Retry-After": str(self.retry_after)},
        )
        return refuse(problem, environ, start_response)
