"""JSON responses encoded with orjson."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from flask import Response

from restengine.constants import JSON


def json_bytes_response(body: bytes, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A response carrying ``body``, already encoded JSON."""
    response = Response(body, status=status, mimetype=JSON)
    if headers:
        response.headers.update(headers)
    return response


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A response carrying ``body`` encoded as JSON."""
    return json_bytes_response(orjson.dumps(body), status, headers)
