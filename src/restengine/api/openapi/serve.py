"""Serving the document: built once per registry state and mount (found in the app's URL map), with a strong ETag."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
from flask import Response, request, url_for
from werkzeug.routing import BuildError

from restengine.api.conditional import etag_of, none_match
from restengine.api.openapi.document import Mount, build_document
from restengine.constants import JSON

if TYPE_CHECKING:
    from restengine.api.registry import Api


class OpenApi:
    """Serves an :class:`Api`'s document: built once per registry state and mount, with a strong ETag.

    Paths are the app's own (the API's prefix, a Blueprint's ``url_prefix``);
    the server URL is relative (the script root, else ``/``), so the document
    is right behind any proxy without knowing the host.
    """

    def __init__(self, api: Api, info: Mapping[str, Any] | None = None) -> None:
        self.api = api
        self.info = dict(info or {})
        self._built: dict[tuple[int, Mount], tuple[bytes, str]] = {}

    def mount(self) -> Mount:
        """Where things are, from the app's URL map (in a request context)."""
        root = request.script_root

        def path(endpoint: str) -> str | None:
            try:
                url = url_for(endpoint)
            except BuildError:
                return None
            return url[len(root) :] if root and url.startswith(root) else url

        index = path(self.api.endpoint("index")) or f"{self.api.url_prefix}/"
        healthz, readyz = path("health.healthz"), path("health.readyz")
        return Mount(
            api=index.rstrip("/"),
            server=root or "/",
            openapi=path(self.api.endpoint("openapi")),
            health=(healthz, readyz) if healthz and readyz else None,
            root=path("index.index"),
        )

    def rendered(self) -> tuple[bytes, str]:
        """The document's bytes and ETag, for the current registrations and mount."""
        key = (self.api.version, self.mount())
        built = self._built.get(key)
        if built is None:
            body = orjson.dumps(build_document(self.api, key[1], self.info))
            built = (body, etag_of(body))
            if len(self._built) > 16:  # registrations changed, or many mounts: start over
                self._built.clear()
            self._built[key] = built
        return built

    def view(self) -> Response:
        body, etag = self.rendered()
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if none_match(request, etag):
            response = Response(status=304)
            response.headers.update(headers)
            return response
        response = Response(body, mimetype=JSON)
        response.headers.update(headers)
        return response
