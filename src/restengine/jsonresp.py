"""JSON responses encoded with orjson."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from flask import Response


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    response = Response(orjson.dumps(body), status=status, mimetype="application/json")
    if headers:
        response.headers.update(headers)
    return response
