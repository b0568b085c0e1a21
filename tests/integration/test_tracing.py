"""Traces (``restengine.tracing``) with OpenTelemetry's in-memory exporter, on the real app and database: one
GET is one trace, the request's span with the PyMongo command's span as its child, continuing the trace of the
``traceparent`` it came with; no query values in the spans."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

import restengine.db
from restengine import tracing
from restengine.api.registry import EXTENSION
from restengine.app import SETTINGS, route_namer
from tests.integration.api_helpers import customer, legacy_app, legacy_registry

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.fixture
def traced(mongodb_uri: str, redis_url: str) -> Iterator[tuple[Flask, Any]]:
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with legacy_registry():
        app = legacy_app(mongodb_uri, redis_url)
        plain = app.wsgi_app
        tracing.instrument(
            app, route_namer(app.extensions[EXTENSION], app.extensions[SETTINGS]), tracer_provider=provider
        )
        try:
            customer("ABC123", "Ada", tags=["secret-tag"])
            exporter.clear()
            yield app, exporter
        finally:
            app.wsgi_app = plain  # type: ignore[method-assign]
            PymongoInstrumentor().uninstrument()
            RedisInstrumentor().uninstrument()
            tracing._on, tracing._provider = False, None
            restengine.db.close_all()


def test_one_get_is_one_trace_with_the_database_command_as_a_child(traced: tuple[Flask, Any]) -> None:
    from opentelemetry.trace import SpanKind

    app, exporter = traced
    response = app.test_client().get(
        "/api/customers/ABC123", headers={"traceparent": f"00-{TRACE_ID}-{PARENT}-01"}, buffered=True
    )
    assert response.status_code == 200
    spans = exporter.get_finished_spans()
    request = next(s for s in spans if s.kind == SpanKind.SERVER)
    assert format(request.context.trace_id, "032x") == TRACE_ID, "the client's trace goes on"
    assert format(request.parent.span_id, "016x") == PARENT
    assert request.attributes["restengine.cache"] == "miss"
    assert request.name == "GET /api/customers/{id}" and request.attributes["http.route"] == "/api/customers/{id}"
    cache = next(s for s in spans if s.name == "restengine.cache")
    assert cache.parent is not None and cache.parent.span_id == request.context.span_id, "the cache's decision"
    finds = [s for s in spans if s.attributes.get("db.system") == "mongodb" or s.name.startswith("find")]
    assert finds, [s.name for s in spans]
    assert all(s.parent is not None and s.parent.span_id == request.context.span_id for s in finds)
    ours = [s for s in spans if s.context.trace_id == request.context.trace_id]
    others = [s.name for s in spans if s not in ours]
    assert all(s.attributes.get("db.system") == "redis" for s in spans if s not in ours), others
    assert {s.name for s in finds} <= {s.name for s in ours}, "the request's spans are one trace"
    everything = " ".join(str(dict(s.attributes or {})) for s in spans)
    assert "ABC123" not in everything.replace("/api/customers/ABC123", ""), "no query values in spans"


def test_a_cached_hit_answered_before_flask_is_traced_too(traced: tuple[Flask, Any]) -> None:
    from opentelemetry.trace import SpanKind

    app, exporter = traced
    client = app.test_client()
    client.get("/api/customers/ABC123")
    exporter.clear()
    hit = client.get("/api/customers/ABC123", buffered=True)
    assert hit.headers["X-Cache"] == "hit"
    spans = exporter.get_finished_spans()
    request = next(s for s in spans if s.kind == SpanKind.SERVER)
    assert request.attributes["restengine.cache"] == "hit"
    cache = next(s for s in spans if s.name == "restengine.cache")
    assert cache.parent is not None and cache.parent.span_id == request.context.span_id
    assert not [s for s in spans if s.attributes.get("db.system") == "mongodb"], "no database command"


@pytest.mark.parametrize(
    ("environ", "wanted"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
    ],
)
def test_traces_are_on_only_when_the_otel_variables_ask(environ: dict[str, str], wanted: bool) -> None:
    assert tracing.wanted(environ) is wanted
