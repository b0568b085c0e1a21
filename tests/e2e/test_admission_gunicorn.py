"""Admission control under gunicorn (``restengine.admission``, ``restengine.ops.worker``): when every thread
of a worker is busy, a request that waited past ``RESTENGINE_QUEUE_BUDGET_MS`` is refused with a fast 503 and
``Retry-After``; the health checks are always answered."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from tests.e2e.helpers import call, gunicorn

BUDGET_MS = 300
HOLD_S = 1.5


def test_a_request_that_waited_past_the_budget_is_refused_at_once(tmp_path: Path, mongodb_uri: str) -> None:
    env = {
        "MONGODB_URI": mongodb_uri,
        "RESTENGINE_APP": "tests.slow_app:app",
        "RESTENGINE_DOCUMENTS": "restengine.demo.bookstore",
        "RESTENGINE_WORKERS": "1",
        "RESTENGINE_THREADS": "2",
        "RESTENGINE_QUEUE_BUDGET_MS": str(BUDGET_MS),
    }
    with gunicorn(tmp_path, env, app="restengine.wsgi:app") as (port, _):
        assert call(port, "GET", "/slow?s=0")[0] == 200
        outcomes: dict[str, tuple[int, dict[str, str], object, float]] = {}

        def ask(name: str, path: str) -> None:
            started = time.monotonic()
            status, headers, body = call(port, "GET", path)
            outcomes[name] = (status, headers, body, time.monotonic() - started)

        # Two requests take both threads for HOLD_S; what comes next waits in the queue.
        holders = [threading.Thread(target=ask, args=(f"hold{i}", f"/slow?s={HOLD_S}")) for i in range(2)]
        for thread in holders:
            thread.start()
        time.sleep(0.3)
        queued = [threading.Thread(target=ask, args=(f"queued{i}", "/api/books?limit=1")) for i in range(3)]
        queued.append(threading.Thread(target=ask, args=("health", "/healthz")))
        for thread in queued:
            thread.start()
        for thread in holders + queued:
            thread.join(15)
        assert [outcomes[f"hold{i}"][0] for i in range(2)] == [200, 200]
        for i in range(3):
            status, headers, body, elapsed = outcomes[f"queued{i}"]
            assert status == 503, (status, body)
            assert headers["content-type"] == "application/problem+json"
            assert headers["retry-after"] == "2"
            assert body["type"] == "urn:restengine:problem:server-busy"  # type: ignore[index]
            assert "waited" in body["detail"]  # type: ignore[index]
            assert elapsed < HOLD_S + 1.0, "refused as soon as a thread saw it, not after its own work"
        assert outcomes["health"][0] == 200, "the health check is answered, however long it waited"
        # Idle again: nothing waits, nothing is refused.
        assert call(port, "GET", "/api/books?limit=1")[0] == 200
