"""RestEngine's gunicorn worker: gthread's, with the wait of each request for a thread recorded.

gunicorn lets a gthread worker choose its thread pool (``get_thread_pool``);
this one is a ``ThreadPoolExecutor`` whose tasks note, in the thread that
runs them, how long they waited in its queue (:func:`restengine.admission.waited`),
for the app's admission control. Everything else is gunicorn's own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from gunicorn.workers.gthread import ThreadWorker as GunicornThreadWorker

from restengine import admission


class TimedPool(ThreadPoolExecutor):
    """A thread pool whose tasks know how long they waited for a thread."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        queued = time.monotonic()

        def run() -> Any:
            admission.waited(time.monotonic() - queued)
            try:
                return fn(*args, **kwargs)
            finally:
                admission.waited(None)

        return super().submit(run)


class ThreadWorker(GunicornThreadWorker):  # type: ignore[misc]
    def get_thread_pool(self) -> ThreadPoolExecutor:
        return TimedPool(max_workers=self.cfg.threads)
