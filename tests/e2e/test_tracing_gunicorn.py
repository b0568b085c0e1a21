"""Traces under gunicorn (``restengine.tracing``): with ``OTEL_TRACES_EXPORTER=console`` each worker starts its
own exporter after the fork, and a GET's spans — the request's, named by its route, and the database command's
— reach it in the caller's trace."""

from __future__ import annotations

import re
import time
from pathlib import Path

from tests.e2e.helpers import get, gunicorn

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_a_workers_spans_are_exported_after_the_fork(tmp_path: Path, mongodb_uri: str) -> None:
    env = {
        "MONGODB_URI": mongodb_uri,
        "RESTENGINE_DOCUMENTS": "tests.legacy_models",
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # the batch processor's export interval, in ms
    }
    with gunicorn(tmp_path, env, app="restengine.wsgi:app") as (port, log):
        status = get(port, "/api/customers/NOP999", headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"})[0]
        assert status == 404
        deadline = time.monotonic() + 10
        while '"name": "GET /api/customers/{id}"' not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        text = log.read_text()
    assert '"name": "GET /api/customers/{id}"' in text, text[-2000:]
    spans = re.findall(r'"name": "([^"]+)",\s*"context": \{\s*"trace_id": "0x([0-9a-f]{32})"', text)
    ours = {name for name, trace in spans if trace == TRACE_ID}
    assert "GET /api/customers/{id}" in ours, spans
    assert any(name.split(".")[-1] == "find" for name in ours), f"the database command, in the same trace: {spans}"
