"""The Data API's error body, for every refusal of a request under its base path.

The OpenAPI reference of the Data API (mongodb.com/docs/api/doc/atlas-data-api-v1, the 400 and 401 responses
of every operation) documents the body ``{"error", "error_code", "link"}`` and the codes ``InvalidParameter``,
``MissingParameter`` and ``InvalidSession``; the rest of :data:`ERROR_CODES` is RestEngine's choice.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from restengine.errors import InvalidParameter, Problem

JSON = "application/json"

ERROR_CODES = {400: "InvalidParameter", 401: "InvalidSession", 403: "NoMatchingRuleFound"}
"""``error_code`` by status. The Data API documented 400 (``InvalidParameter``, ``MissingParameter`` for an
absent member) and 401 (``InvalidSession``); a refusal by the policy is App Services' ``NoMatchingRuleFound``;
any other status is its HTTP reason phrase without spaces (``NotFound``, ``Conflict``, ``TooManyRequests``)."""


class MissingParameter(InvalidParameter):
    """A required member is absent: the Data API's ``MissingParameter`` (400)."""


def error_code(problem: Problem) -> str:
    if isinstance(problem, MissingParameter):
        return "MissingParameter"
    known = ERROR_CODES.get(problem.status)
    if known is not None:
        return known
    try:
        return HTTPStatus(problem.status).phrase.replace(" ", "").replace("-", "")
    except ValueError:
        return "Error"


def _flatten(errors: Any, prefix: str = "") -> list[str]:
    """``errors`` (nested by field or index, as the API's validation reports them) as ``path: message`` lines."""
    if isinstance(errors, Mapping):
        lines: list[str] = []
        for key, value in errors.items():
            lines += _flatten(value, f"{prefix}.{key}" if prefix and key != "" else (prefix or str(key)))
        return lines
    if isinstance(errors, (list, tuple)):
        return [line for item in errors for line in _flatten(item, prefix)]
    return [f"{prefix}: {errors}" if prefix else str(errors)]


def message(problem: Problem) -> str:
    if isinstance(problem, InvalidParameter):
        text = "; ".join(_flatten(problem.errors.get(problem.param)))
        return text if isinstance(problem, MissingParameter) else f"{problem.param}: {text}"
    text = problem.detail or problem.title
    if problem.errors:
        text += " " + "; ".join(_flatten(problem.errors))
    return text


def error_shape(problem: Problem) -> tuple[dict[str, Any], str, int]:
    """``problem`` as the Data API's error body: ``{"error", "error_code", "link"}``, as JSON, with its status.

    ``link`` pointed to the App Services log entry of the failed request; here it is the URI naming the kind of
    problem (the native API's problem ``type``), the closest stable reference RestEngine has.
    """
    return {"error": message(problem), "error_code": error_code(problem), "link": problem.type}, JSON, problem.status
