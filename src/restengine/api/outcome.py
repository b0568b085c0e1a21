"""Where a write stands, and what the client is told when the database fails it.

A write request has two phases. **Before** the write is sent (reading the
stored document, checking references, the caller's rules, recording an
``Idempotency-Key``) every database call shares the request's deadline: past
it the answer is 503 and nothing was written, so retrying is safe. Once the
write is **sent**, it has its own budget (``RESTENGINE_WRITE_TIMEOUT_MS``) and
the answer is its real outcome. When that outcome cannot be known — the
connection broke or the budget ran out after the command may have reached the
server — the answer is :class:`~restengine.errors.OutcomeUnknown` (504), never
the 503: a client that retried a 503 blindly could apply the write twice.
Either way the cache is invalidated, since a write may have happened.

Every write goes through :meth:`Phases.sending`, so that is where its caller is
marked a recent writer (``wrote``): its lists then read from the primary for a
while (read-your-writes on a replica set, see :mod:`restengine.replicas`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator

import pymongo
from pymongo.errors import ServerSelectionTimeoutError, WaitQueueTimeoutError

from restengine import metrics
from restengine.errors import OutcomeUnknown, database_cause, database_unavailable

log = logging.getLogger(__name__)

NOT_SENT = (ServerSelectionTimeoutError, WaitQueueTimeoutError)
"""Failures that happen before a command leaves the client: no server to send it to, no free connection.
(PyMongo raises the first attempt's error, not these, when a retried write's second server selection fails.)"""


class Progress:
    """What the code sending a write tells its phase: a step of it is known to have been applied."""

    def __init__(self) -> None:
        self.applied = False


class Phases:
    """One write request's phases: :meth:`before` (the request's deadline) and :meth:`sending` (the write's budget).

    ``deadline`` (seconds) is shared by every :meth:`before` block of the
    request; ``write_budget`` (seconds) bounds the write itself.
    ``may_have_written`` is called when sending fails (it invalidates the cache); ``wrote`` (if given) each
    time a write is about to be sent, before it leaves: once the client has the answer, the mark exists.
    """

    def __init__(
        self,
        deadline: float,
        write_budget: float,
        may_have_written: Callable[[], None],
        wrote: Callable[[], None] | None = None,
    ) -> None:
        self._until = time.monotonic() + deadline
        self._write_budget = write_budget
        self._may_have_written = may_have_written
        self._wrote = wrote

    @contextlib.contextmanager
    def before(self) -> Iterator[None]:
        """Database work before the write: under what is left of the request's deadline (503 past it)."""
        remaining = self._until - time.monotonic()
        if remaining <= 0:
            metrics.refused("database_unavailable")
            raise database_unavailable()
        with pymongo.timeout(remaining):
            yield

    @contextlib.contextmanager
    def sending(self) -> Iterator[Progress]:
        """The write itself: its own budget; a failure that may have left it applied is :class:`OutcomeUnknown`.

        Errors that are the database's definite answer (a duplicate key, a
        refused document) pass through unchanged, as does a failure before
        anything was sent (503: nothing written).
        """
        if self._wrote is not None:
            self._wrote()  # before sending: even a write whose outcome is unknown may have been applied
        progress = Progress()
        try:
            with pymongo.timeout(self._write_budget):
                yield progress
        except Exception as exc:
            try:
                self._may_have_written()
            except Exception:  # the client's answer must not depend on the cache
                log.exception("cache invalidation after a failed write failed")
            cause = database_cause(exc)
            if cause is None or (isinstance(cause, NOT_SENT) and not progress.applied):
                raise
            log.warning("write outcome unknown: %s: %s", type(cause).__name__, cause)
            raise OutcomeUnknown() from exc
