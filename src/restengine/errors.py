"""One error shape for every failure: ``application/problem+json`` (RFC 9457).

Views raise :class:`Problem` (or let a library error propagate); the
handlers registered by :func:`init_app` turn everything into the same body:
``type``, ``title``, ``status``, ``detail`` and, where there are field
messages, ``errors``. A client never sees a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import orjson
from flask import Response, current_app
from pymongo.errors import ConnectionFailure, PyMongoError
from werkzeug.exceptions import HTTPException

if TYPE_CHECKING:
    from flask import Flask

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


class Problem(Exception):
    """An error with an HTTP status, rendered as problem+json.

    ``type`` is a URI naming the kind of problem (``about:blank`` when the
    status says it all); ``extra`` members are added to the body.
    """

    status: int = 500
    type: str = "about:blank"

    def __init__(
        self,
        detail: str | None = None,
        *,
        status: int | None = None,
        type: str | None = None,
        title: str | None = None,
        errors: Any = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type
        self.detail = detail
        self.title = title or HTTPStatus(self.status).phrase
        self.errors = errors
        self.headers = dict(headers or {})
        self.extra = extra


class ServiceUnavailable(Problem):
    """The database (or another dependency) cannot answer within the budget: 503 + Retry-After."""

    status = 503
    type = "urn:restengine:problem:unavailable"


def problem_response(problem: Problem) -> Response:
    body: dict[str, Any] = {"type": problem.type, "title": problem.title, "status": problem.status}
    if problem.detail:
        body["detail"] = problem.detail
    if problem.errors is not None:
        body["errors"] = problem.errors
    body.update(problem.extra)
    response = Response(orjson.dumps(body), status=problem.status, mimetype=PROBLEM_JSON)
    response.headers.update(problem.headers)
    return response


def retry_after_header() -> str:
    settings = current_app.extensions.get("restengine.settings")
    return str(settings.retry_after if settings is not None else 2)


def database_unavailable(exc: BaseException) -> Problem:
    """The 503 for a database that is unreachable, overloaded or past the request's deadline."""
    return ServiceUnavailable(
        "The database did not answer within the request's time budget; retry later.",
        title="Database unavailable",
        headers={"Retry-After": retry_after_header()},
    )


def _database_cause(exc: BaseException) -> PyMongoError | None:
    """The PyMongo timeout or connection failure behind ``exc``, if any (libraries wrap them)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionFailure) or (isinstance(current, PyMongoError) and current.timeout):
            return current
        current = current.__cause__ or current.__context__
    return None


def _handle_problem(exc: Problem) -> Response:
    return problem_response(exc)


def _handle_http(exc: HTTPException) -> Response:
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    return problem_response(Problem(exc.description, status=exc.code or 500, title=exc.name, headers=headers))


def _handle_unexpected(exc: Exception) -> Response:
    cause = _database_cause(exc)
    if cause is not None:
        log.warning("database unavailable: %s: %s", type(cause).__name__, cause)
        return problem_response(database_unavailable(cause))
    log.exception("unhandled error")
    return problem_response(Problem("The server failed to handle this request.", status=500))


def init_app(app: Flask) -> None:
    """Route every error raised while handling a request through one problem+json renderer."""
    app.register_error_handler(Problem, _handle_problem)
    app.register_error_handler(HTTPException, _handle_http)
    app.register_error_handler(Exception, _handle_unexpected)
