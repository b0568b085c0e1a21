"""Fresh cache hits answered before Flask's dispatch.

A cached ``GET /api/<name>`` or ``/api/<name>/<id>`` needs no routing, no
request context and no view: this WSGI middleware looks the request up in the
shared cache (one Redis round trip) and, when a fresh entry is there, answers
with exactly the response the view would give (body, ETag, ``304`` on
``If-None-Match``, ``Cache-Control``, ``X-Cache: hit``, ``X-Request-ID``).
Anything else — a miss, a stale entry, ``expand``, another method or path —
goes to Flask unchanged, where the view does the full lookup.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from restengine.api.codec import pk_value
from restengine.api.conditional import etag_matches
from restengine.cache import EXTENSION as CACHE_EXTENSION
from restengine.cache import request_key
from restengine.constants import REQUEST_ID_HEADER as REQUEST_ID
from restengine.requestid import request_id

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from flask import Flask

    from restengine.api.registry import Api


class CachedReads:
    """WSGI middleware in front of Flask for fresh cache hits of the API's GETs."""

    def __init__(self, wsgi_app: WSGIApplication, app: Flask, api: Api) -> None:
        self.wsgi_app = wsgi_app
        self.app = app
        self.api = api
        self.prefix = api.url_prefix + "/"

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD")
        path = environ.get("PATH_INFO", "")
        if (method == "GET" or method == "HEAD") and path.startswith(self.prefix):
            response = self._hit(environ, path[len(self.prefix) :])
            if response is not None:
                status, headers, body = response
                start_response(status, headers)
                return [] if method == "HEAD" else [body]
        return self.wsgi_app(environ, start_response)

    def _hit(self, environ: WSGIEnvironment, rest: str) -> tuple[str, list[tuple[str, str]], bytes] | None:
        parts = rest.split("/")
        if len(parts) > 2 or not all(parts) or parts[-1] == "_bulk":
            return None
        resource = self.api.resources.get(parts[0])
        cache = self.app.extensions.get(CACHE_EXTENSION)
        if resource is None or cache is None or not cache.enabled:
            return None
        ttl = resource.options.cache_ttl if resource.options.cache_ttl is not None else cache.default_ttl
        if ttl <= 0 or "expand" in environ.get("QUERY_STRING", ""):
            return None
        if len(parts) == 1:
            generations = cache.list_generations([resource.collection_name])
        else:
            try:
                pk = resource.stored_pk(pk_value(resource.doc_cls, parts[1]))
            except (ValueError, TypeError):
                return None  # the view answers 404
            generations = cache.item_generations(resource.collection_name, pk)
        key = request_key(resource.name, environ)
        entry = cache.fresh(key, generations)
        if entry is None:
            return None
        headers = [
            ("ETag", entry.etag),
            *entry.headers.items(),
            ("Cache-Control", resource.options.cache_control),
            ("X-Cache", "hit"),
            (REQUEST_ID, request_id(environ.get("HTTP_X_REQUEST_ID"))),
        ]
        if etag_matches(environ.get("HTTP_IF_NONE_MATCH"), entry.etag):
            return "304 NOT MODIFIED", headers, b""
        headers += [("Content-Type", "application/json"), ("Content-Length", str(len(entry.body)))]
        return "200 OK", headers, entry.body
