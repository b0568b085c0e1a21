"""One error shape for every failure: ``application/problem+json`` (RFC 9457).

Every HTTP error the service raises is a :class:`Problem` subclass defined
here; library errors (MongoEngine, PyMongo, werkzeug) get their HTTP meaning
in :func:`to_problem`, and :func:`render` is the only place a response is
built from an exception. Two entry points call it: :func:`init_app`'s
app-wide handler (create_app's own routes: 404/405 from routing, /readyz) and
:func:`handled`, which wraps the API's views so that a host application's
own error handlers never see the API's errors. A client never sees a stack
trace.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import orjson
from flask import Response, current_app, has_app_context, has_request_context, request
from pymongo.errors import ConnectionFailure, PyMongoError, WriteError
from werkzeug.datastructures import MIMEAccept
from werkzeug.exceptions import HTTPException
from werkzeug.http import parse_accept_header

from restengine import metrics
from restengine.constants import DRAIN_LIMIT, JSON, PROBLEM_JSON, REQUEST_ID_HEADER

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment
    from flask import Flask

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


class OutcomeUnknown(Problem):
    """504: a write was sent and its answer never came; it may or may not have been applied.

    Never the 503 "retry later" (that one means nothing was written): retrying
    this blindly could apply the write twice. A retry with the same
    ``Idempotency-Key`` is safe; without one, read the resource first.
    """

    status = 504
    type = "urn:restengine:problem:outcome-unknown"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(
            detail
            or "The write was sent to the database but its answer did not arrive in time: it may or may not "
            "have been applied. Retry with the same Idempotency-Key, or read the resource to find out.",
            title="Write outcome unknown",
        )


class TooManyItems(Problem):
    """413: an array POST or ``_bulk`` with more items than one request may carry (nothing was written)."""

    status = 413
    type = "urn:restengine:problem:too-many-items"

    def __init__(self, count: int, maximum: int) -> None:
        super().__init__(
            f"{count} items in one request; at most {maximum} are accepted. Nothing was written: "
            "send them in smaller requests.",
            max_items=maximum,
        )


class IdempotencyProblem(Problem):
    """An ``Idempotency-Key`` that cannot be honoured: malformed (400), reused with another request (422),
    or its first request still running (409, with ``Retry-After``)."""

    type = "urn:restengine:problem:idempotency"


class NotFound(Problem):
    """No such resource or item (a malformed id is one that cannot exist): 404."""

    status = 404

    def __init__(self, detail: str = "No such item.", **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)


class MethodNotAllowed(Problem):
    """405, with ``Allow`` listing what is allowed."""

    status = 405

    def __init__(self, method: str, allowed: list[str] | tuple[str, ...]) -> None:
        super().__init__(f"{method} is not allowed here.", headers={"Allow": ", ".join(allowed)})


class NotAcceptable(Problem):
    """406: the request's ``Accept`` takes neither JSON nor problem+json, the only media types the API sends."""

    status = 406

    def __init__(self) -> None:
        super().__init__(f"The API answers {JSON} (errors: {PROBLEM_JSON}); the request's Accept allows neither.")


def acceptable(accept: str | None) -> bool:
    """Whether a request's ``Accept`` header value takes JSON or problem+json; an absent or empty one does.

    The one place this is decided: the API's views answer :class:`NotAcceptable` otherwise, and a layer
    answering before them (the response cache) must leave such a request to them.
    """
    return not accept or _takes_json(accept)


@functools.lru_cache(maxsize=256)  # clients send a handful of distinct values; parsing one costs more than a read
def _takes_json(accept: str) -> bool:
    return parse_accept_header(accept, MIMEAccept).best_match((JSON, PROBLEM_JSON)) is not None


class Unauthorized(Problem):
    """401: no valid credentials for what was asked; ``WWW-Authenticate: Bearer`` says how to send them."""

    status = 401
    type = "urn:restengine:problem:unauthorized"

    def __init__(self, detail: str, *, invalid: bool = False) -> None:
        challenge = 'Bearer error="invalid_token"' if invalid else "Bearer"
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class Forbidden(Problem):
    """403: the caller is known and may not do this."""

    status = 403
    type = "urn:restengine:problem:forbidden"


class Conflict(Problem):
    """409: a unique index, or a reference rule, refuses the write."""

    status = 409
    type = "urn:restengine:problem:conflict"


def duplicate_message(fields: Sequence[str] | None) -> str:
    """What a client is told of a unique-index violation: the API's field names, never the database's.

    ``fields`` are the names the client uses (``None`` or empty when they
    cannot all be told, e.g. the index covers a field the client does not
    see). Index and collection names, stored field names and the duplicated
    values are never part of it.
    """
    if not fields:
        return "Another item has the same value for a field that must be unique."
    if len(fields) == 1:
        return f"Another item has the same {fields[0]}."
    return f"Another item has the same combination of {', '.join(fields)}."


def unique_index_fields(details: Mapping[str, Any] | None) -> list[str] | None:
    """The stored (dotted) field paths of the unique index a duplicate-key error names, if the server says.

    ``details`` is a write error (``BulkWriteError.details["writeErrors"][i]``)
    or ``DuplicateKeyError.details``; mongod and SecantusDB both send
    ``keyPattern``. ``None`` when it is missing.
    """
    pattern = details.get("keyPattern") if isinstance(details, Mapping) else None
    if not isinstance(pattern, Mapping) or not pattern:
        return None
    return [str(path) for path in pattern]


class PreconditionFailed(Problem):
    """412: the item changed since the ETag in ``If-Match``."""

    status = 412
    type = "urn:restengine:problem:precondition-failed"


class UnsupportedMediaType(Problem):
    status = 415


class InputError(ValueError):
    """A request body that does not fit the resource; ``errors`` maps fields (or indexes) to messages."""

    def __init__(self, errors: Mapping[str, Any]) -> None:
        super().__init__("invalid input")
        self.errors = dict(errors)


class InvalidParameter(Problem):
    """A query parameter the API cannot accept: 400 naming the parameter."""

    status = 400
    type = "urn:restengine:problem:invalid-parameter"

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"Invalid query parameter {param!r}: {message}", errors={param: [message]})
        self.param = param


ERROR_SHAPE = "restengine.error_shape"
"""WSGI environ key: how a compatibility profile shapes its errors, ``Problem`` -> (body, media type, status);
unset: problem+json."""


def problem_response(problem: Problem, environ: Mapping[str, Any] | None = None) -> Response:
    """``problem`` as problem+json, or in the shape of the request's compatibility profile (:data:`ERROR_SHAPE`)."""
    shape = None if environ is None else environ.get(ERROR_SHAPE)
    if shape is not None:
        shaped, mimetype, status = shape(problem)
        response = Response(orjson.dumps(shaped, option=orjson.OPT_NON_STR_KEYS), status=status, mimetype=mimetype)
        response.headers.update(problem.headers)
        return response
    body: dict[str, Any] = {"type": problem.type, "title": problem.title, "status": problem.status}
    if problem.detail:
        body["detail"] = problem.detail
    if problem.errors is not None:
        body["errors"] = problem.errors
    body.update(problem.extra)
    # MongoEngine's ValidationError.to_dict() keys list items by int.
    response = Response(
        orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS), status=problem.status, mimetype=PROBLEM_JSON
    )
    response.headers.update(problem.headers)
    return response


def refuse(
    problem: Problem,
    environ: WSGIEnvironment,
    start_response: StartResponse,
    headers: Iterable[tuple[str, str]] = (),
) -> Iterable[bytes]:
    """Answer a request with ``problem`` from a WSGI layer, before Flask runs: its request id echoed
    (the client's, when usable), ``headers`` added."""
    from restengine.requestid import request_id  # it imports Flask's request globals, as this module does

    response = problem_response(problem, environ)
    response.headers.extend(headers)
    response.headers[REQUEST_ID_HEADER] = request_id(environ.get("HTTP_X_REQUEST_ID"))
    answer: Iterable[bytes] = response(environ, start_response)
    return answer


RETRY_AFTER = "RESTENGINE_RETRY_AFTER"  # app.config key: the seconds a 503 asks clients to wait
DEFAULT_RETRY_AFTER = 2


def database_unavailable() -> Problem:
    """The 503 for a database that is unreachable, overloaded or past the request's deadline."""
    retry_after = current_app.config.get(RETRY_AFTER, DEFAULT_RETRY_AFTER) if has_app_context() else DEFAULT_RETRY_AFTER
    return ServiceUnavailable(
        "The database did not answer within the request's time budget; retry later.",
        title="Database unavailable",
        headers={"Retry-After": str(retry_after)},
    )


def database_cause(exc: BaseException) -> PyMongoError | None:
    """The PyMongo timeout or connection failure behind ``exc``, if any (libraries wrap them)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionFailure) or (isinstance(current, PyMongoError) and current.timeout):
            return current
        current = current.__cause__ or current.__context__
    return None


def _refused_write(exc: BaseException) -> WriteError | None:
    """The server's refusal of one write (not a duplicate key) behind ``exc``, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, WriteError) and current.code not in DUPLICATE_KEY:
            return current
        current = current.__cause__ or current.__context__
    return None


DUPLICATE_KEY = (11000, 11001)
"""The server's codes for a unique-index violation."""


def to_problem(exc: BaseException) -> Problem | None:
    """The problem a known exception stands for, or ``None`` for an unexpected one.

    The one place library errors get their HTTP meaning: MongoEngine's
    ValidationError → 422 (its ``to_dict()`` as ``errors``), NotUniqueError →
    409, DoesNotExist → 404, InvalidQueryError/LookUpError → 400 (the
    library's and the server's own messages, which name classes, collections,
    indexes and stored fields, are never passed on); werkzeug's
    HTTP errors keep their status and headers; a PyMongo timeout or connection
    failure anywhere in the cause chain → 503.
    """
    import mongoengine.errors as me

    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, InputError):
        return Problem(
            "The request body is not valid for this resource.",
            status=422,
            type="urn:restengine:problem:validation",
            errors=exc.errors,
        )
    if isinstance(exc, me.ValidationError):
        # Its message names the Document class and the primary key; its fields are attribute names.
        return Problem(
            "The request body is not valid for this resource.",
            status=422,
            type="urn:restengine:problem:validation",
            errors=exc.to_dict() or {"": exc.message or "not valid"},
        )
    if isinstance(exc, me.NotUniqueError):
        # Its message is the server's "E11000 ... collection: ... index: ... dup key: {...}".
        return Conflict(duplicate_message(None))
    if isinstance(exc, me.DoesNotExist):
        return NotFound()
    if isinstance(exc, (me.InvalidQueryError, me.LookUpError)):
        log.info("query refused by MongoEngine: %s: %s", type(exc).__name__, exc)  # names stored fields
        return Problem("The request cannot be applied to this resource.", status=400)
    if isinstance(exc, HTTPException):
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        return Problem(exc.description, status=exc.code or 500, title=exc.name, headers=headers)
    refused = _refused_write(exc)
    if refused is not None:
        # The server refused the document (too deeply nested, a key it does not take, a validator...):
        # nothing of it was written. Its message names collections and stored fields: logged, not sent.
        log.info("write refused by the database: code %s: %s", refused.code, refused)
        return Problem(
            "The database refused this document; nothing was written.",
            status=422,
            type="urn:restengine:problem:validation",
        )
    cause = database_cause(exc)
    if cause is not None:
        metrics.refused("database_unavailable")
        log.warning("database unavailable: %s: %s", type(cause).__name__, cause)
        return database_unavailable()
    return None


def drain_body() -> bool:
    """Read and discard the request's unread body, at most :data:`DRAIN_LIMIT` bytes; whether it all was read.

    A refused body (413) is left unread by the view, and the next request on a
    keep-alive connection would start inside it. An application may not send
    ``Connection: close`` (a hop-by-hop header, PEP 3333; gunicorn drops it and
    drains at most 64 KiB itself before closing the connection it has just
    announced as kept alive): reading the body here keeps that connection usable.
    A body announced larger than the limit is not read at all (under RestEngine's gunicorn configuration its
    connection is closed after the answer).
    """
    environ = request.environ
    stream = environ.get("wsgi.input")
    if stream is None:
        return True
    try:
        length = int(environ.get("CONTENT_LENGTH") or -1)
    except ValueError:
        return False
    if length < 0 and not environ.get("wsgi.input_terminated"):
        return False  # where the body ends is unknown: reading could block
    remaining = DRAIN_LIMIT if length < 0 else length
    if remaining > DRAIN_LIMIT:
        return False
    try:
        while remaining > 0:
            chunk = stream.read(min(remaining, 64 * 1024))
            if not chunk:
                return True
            remaining -= len(chunk)
        return length >= 0 or not stream.read(1)
    except (OSError, ValueError):
        return False


def render(exc: BaseException) -> Response:
    """The problem+json response for any exception; an unexpected one is logged and is a bare 500.

    A 413 drains the refused body first (see :func:`drain_body`).
    """
    problem = to_problem(exc)
    if problem is None:
        log.exception("unhandled error", exc_info=exc)
        problem = Problem("The server failed to handle this request.", status=500)
    if not has_request_context():
        return problem_response(problem)
    if problem.status == 413:
        drain_body()
    return problem_response(problem, request.environ)


def handled(view: Callable[..., Response]) -> Callable[..., Response]:
    """``view``, with any exception it raises rendered here (not by the host app's error handlers)."""

    def run(**kwargs: Any) -> Response:
        try:
            return view(**kwargs)
        except Exception as exc:  # the API's one catch-all: see the module docstring
            return render(exc)

    run.__name__ = view.__name__
    run.__doc__ = view.__doc__
    return run


def init_app(app: Flask, *, retry_after: int = DEFAULT_RETRY_AFTER) -> None:
    """Route every error raised while handling a request through :func:`render`; 503s ask for ``retry_after`` s."""
    app.config[RETRY_AFTER] = retry_after
    app.register_error_handler(Exception, render)
