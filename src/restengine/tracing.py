"""Traces with OpenTelemetry: off by default, on with the standard ``OTEL_*`` environment variables.

On when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set, or
``OTEL_TRACES_EXPORTER`` names an exporter (``otlp``, ``console``); ``OTEL_SDK_DISABLED=true`` keeps it
off. Then the app is instrumented with OpenTelemetry's own instrumentations: a span for each request
(its WSGI middleware, around every layer, so a cached hit answered before Flask is a span too, named after
the route template), a child span for each
PyMongo command (its statement is not recorded: no query values in spans) and each Redis call, and a
``restengine.cache`` span for the cache's lookup (the decision: answer from the cache, or go on to the
view, whose database commands are then the request's children), and an attribute on the request's span
saying what the cache did. The W3C ``traceparent``
of a client or of nginx (which passes it on) continues its trace.

The SDK's batch span processor runs a thread, which a fork does not copy: under gunicorn the tracer provider
is made in each worker after the fork (``post_fork`` calls :func:`start`); elsewhere ``create_app`` does.
Spans go to the OTLP/HTTP exporter configured by the ``OTEL_EXPORTER_OTLP_*`` variables (or the console
exporter), with ``service.name`` from ``OTEL_SERVICE_NAME`` (default ``restengine``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment
    from flask import Flask

UNDER_GUNICORN = "RESTENGINE_UNDER_GUNICORN"  # set by the gunicorn configuration: start() runs after the fork

_on = False
_provider: Any = None  # the provider instrument() was given (None: the global one)


def wanted(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the ``OTEL_*`` variables ask for traces."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return bool(exporter or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def on() -> bool:
    """Whether this process traces (the cache layer then notes its decision on the request's span)."""
    return _on


def instrument(app: Flask, route_of: Callable[[WSGIEnvironment], str | None], tracer_provider: Any = None) -> None:
    """Trace ``app``'s requests (its whole WSGI pipeline), every PyMongo command and every Redis call.

    The request's span is named after its route (``GET /api/books/{id}``, ``route_of``), never its raw
    path. ``tracer_provider``: the SDK's provider to use (tests give one with an in-memory exporter);
    without it the global one, which :func:`start` sets.
    """
    global _on, _provider
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

    def named(span: Any, environ: WSGIEnvironment, status: str, headers: list[tuple[str, str]]) -> None:
        route = route_of(environ)
        if route is not None and span.is_recording():
            span.set_attribute("http.route", route)
            span.update_name(f"{environ.get('REQUEST_METHOD', '')} {route}")

    app.wsgi_app = OpenTelemetryMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, response_hook=named, tracer_provider=tracer_provider
    )
    pymongo = PymongoInstrumentor()
    if not pymongo.is_instrumented_by_opentelemetry:
        pymongo.instrument(tracer_provider=tracer_provider, capture_statement=False)
    redis = RedisInstrumentor()
    if not redis.is_instrumented_by_opentelemetry:
        redis.instrument(tracer_provider=tracer_provider)
    _on, _provider = True, tracer_provider
    if tracer_provider is None and not os.environ.get(UNDER_GUNICORN):
        start()


def start() -> None:
    """Make this process's tracer provider and exporter (after any fork: the batch processor is a thread)."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    name = os.environ.get("OTEL_SERVICE_NAME", "restengine")
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    exporter: SpanExporter
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "console":
        exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


def span(name: str) -> AbstractContextManager[Any]:
    """A child span of the request's while the block runs (nothing at all when this process does not trace)."""
    if not _on:
        return nullcontext()
    from opentelemetry import trace

    return trace.get_tracer("restengine", tracer_provider=_provider).start_as_current_span(name)


def note_cache(result: str) -> None:
    """Say on the request's span what the cache did (``hit``, ``miss``, …)."""
    if _on:
        from opentelemetry import trace

        trace.get_current_span().set_attribute("restengine.cache", result)
