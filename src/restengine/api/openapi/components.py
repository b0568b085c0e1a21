"""The parts of the OpenAPI document that do not depend on the registrations.

The ``Problem`` schema and the service endpoints' schemas, the shared
parameters, headers and responses, and :func:`responses` to refer to them.
"""

from __future__ import annotations

from typing import Any

from restengine.api.fields import Schema
from restengine.constants import PROBLEM_JSON

OPENAPI = "3.1.0"
DIALECT = "https://spec.openapis.org/oas/3.1/dialect/base"
ETAG = '^"[0-9a-f]{32}"$'


def header_refs(*names: str) -> dict[str, Any]:
    """References to the shared headers; ``ETag-required`` is the ``ETag`` a response always has."""
    return {name.removesuffix("-required"): {"$ref": f"#/components/headers/{name}"} for name in names}


def responses(*statuses: str) -> dict[str, Any]:
    """References to the shared responses of these statuses."""
    return {status: {"$ref": f"#/components/responses/{RESPONSE_NAMES[status]}"} for status in statuses}


# ---------------------------------------------------------------- fixed components

PROBLEM_SCHEMA: Schema = {
    "type": "object",
    "description": "An error (RFC 9457). `errors` names each offending parameter, field or index.",
    "properties": {
        "type": {"type": "string", "format": "uri-reference", "examples": ["urn:restengine:problem:validation"]},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "errors": {
            "type": "object",
            "description": (
                "By query parameter (a list of messages), by field (a message, or an object for "
                "embedded documents and lists), or by index for arrays and _bulk."
            ),
        },
    },
    "required": ["type", "title", "status"],
}

NOT_READY_SCHEMA: Schema = {
    "allOf": [
        {"$ref": "#/components/schemas/Problem"},
        {
            "type": "object",
            "properties": {"checks": {"type": "object", "additionalProperties": {"type": "string"}}},
            "required": ["checks"],
        },
    ]
}

READY_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "status": {"const": "ready"},
        "checks": {
            "type": "object",
            "additionalProperties": {"type": "string", "description": "ok, not configured"},
        },
    },
    "required": ["status", "checks"],
    "additionalProperties": False,
}

INDEX_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "resources": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "url": {"type": "string", "format": "uri"}},
                "required": ["name", "url"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["resources"],
    "additionalProperties": False,
}

ROOT_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "links": {"type": "object", "additionalProperties": {"type": "string", "format": "uri"}},
    },
    "required": ["name", "links"],
}

BULK_RESULTS: Schema = {
    "type": "object",
    "properties": {
        "results": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer", "minimum": 0},
                    "op": {"enum": ["insert", "update", "replace", "delete"]},
                    "id": {"type": "string"},
                    "status": {
                        "enum": [200, 201, 204, 404, 409, 422, None],
                        "description": "404: it matched nothing (deleted earlier in the batch, or meanwhile). "
                        "null: not attempted, after a failure in an ordered batch.",
                    },
                    "error": {"type": "string"},
                },
                "required": ["index", "op", "id", "status"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["results"],
    "additionalProperties": False,
}

PARAMETERS: dict[str, Any] = {
    "IfNoneMatch": {
        "name": "If-None-Match",
        "in": "header",
        "description": "ETags you hold: 304 when the representation is still one of them.",
        "schema": {"type": "string"},
    },
    "IfMatch": {
        "name": "If-Match",
        "in": "header",
        "description": "Write only if the item's ETag is one of these (strong comparison); else 412.",
        "schema": {"type": "string"},
    },
    "IdempotencyKey": {
        "name": "Idempotency-Key",
        "in": "header",
        "description": (
            "Makes a retry safe (IETF httpapi draft): the same key with the same request replays the first "
            "response (`Idempotent-Replayed: true`) and writes nothing; with another request it is a 422; "
            'while the first request runs, a 409 with Retry-After. A Structured Field string (`"…"`) or a '
            "bare token, 1 to 255 printable ASCII characters. Kept for 24 h by default, per caller."
        ),
        "schema": {"type": "string", "minLength": 1, "maxLength": 257},
    },
    "Cursor": {
        "name": "cursor",
        "in": "query",
        "description": (
            "Where the page starts: the opaque, signed token in the `next` URL, which also repeats the "
            "request's other parameters, so following `next` is all a client needs. The token is a position "
            "only, bound to the resource and the sort: with another sort it is a 400; with other filters the "
            "page starts at that position of the other query. Any other value is a 400."
        ),
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,4096}$"},
    },
    "Count": {
        "name": "count",
        "in": "query",
        "description": (
            "Add the total (`count`, `X-Total-Count`); `estimated` is cheaper without filters. A count of filters "
            "no index narrows down is a 400 unless the resource allows it (`expensive=['count']`)."
        ),
        "schema": {"enum": ["exact", "estimated"]},
    },
}

HEADERS: dict[str, Any] = {
    "ETag": {"description": "A strong ETag of the body.", "schema": {"type": "string", "pattern": ETAG}},
    "ETag-required": {
        "description": "A strong ETag of the body.",
        "required": True,
        "schema": {"type": "string", "pattern": ETAG},
    },
    "Link": {
        "description": 'The next page: `<url>; rel="next"`, the URL in `next` (the same query, the next cursor).',
        "schema": {"type": "string"},
    },
    "X-Total-Count": {"description": "The total, with `?count=`.", "schema": {"type": "integer", "minimum": 0}},
    "Location": {"description": "The created item's URL (for an object body).", "schema": {"type": "string"}},
    "Idempotent-Replayed": {
        "description": "`true` when this is the kept response of an earlier request with the same Idempotency-Key.",
        "schema": {"const": "true"},
    },
    "Cache-Control": {"description": "How clients may cache the response.", "schema": {"type": "string"}},
    "X-Cache": {
        "description": "How the shared cache answered, when it is on.",
        "schema": {"enum": ["hit", "miss", "stale"]},
    },
    "Allow": {"description": "The methods allowed.", "required": True, "schema": {"type": "string"}},
    "Retry-After": {"description": "Seconds to wait.", "required": True, "schema": {"type": "integer"}},
    "RateLimit-Policy": {
        "description": 'The caller\'s quota (IETF httpapi draft): `"read";q=600;w=60` is 600 requests per 60 s.',
        "schema": {"type": "string"},
    },
    "RateLimit": {
        "description": 'What is left of it: `"read";r=599;t=42` is 599 requests for the next 42 s.',
        "schema": {"type": "string"},
    },
    "Accept-Patch": {"description": "The patch media type.", "schema": {"type": "string"}},
    "WWW-Authenticate": {
        "description": 'How to authenticate: `Bearer`, or `Bearer error="invalid_token"`.',
        "required": True,
        "schema": {"type": "string"},
    },
}

SECURITY_SCHEMES: dict[str, Any] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (`restengine keys create`) or a JWT, as `Authorization: Bearer <credential>`.",
    }
}


def _problem_response(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if headers:
        response["headers"] = headers
    return response


RESPONSE_NAMES = {
    "304": "NotModified",
    "400": "BadRequest",
    "404": "NotFound",
    "405": "BulkOnlyPost",
    "406": "NotAcceptable",
    "409": "Conflict",
    "412": "PreconditionFailed",
    "413": "ContentTooLarge",
    "414": "URITooLong",
    "415": "UnsupportedMediaType",
    "422": "UnprocessableContent",
    "401": "Unauthorized",
    "403": "Forbidden",
    "429": "TooManyRequests",
    "500": "InternalServerError",
    "503": "ServiceUnavailable",
    "504": "OutcomeUnknown",
}

RESPONSES: dict[str, Any] = {
    "NotModified": {
        "description": "The ETag in If-None-Match is current; no body.",
        "headers": header_refs("ETag-required", "Link", "Cache-Control", "X-Cache"),
    },
    "BadRequest": _problem_response(
        "Malformed JSON, or a query parameter the resource cannot accept (`errors` names it)."
    ),
    "NotFound": _problem_response("No such item (or the id cannot be one)."),
    "Conflict": _problem_response(
        "A unique index is violated, or a reference rule (DENY) refuses the delete; or a request with the "
        "same Idempotency-Key is still in progress (with Retry-After)."
    ),
    "PreconditionFailed": _problem_response("The item changed since the ETag in If-Match."),
    "BulkOnlyPost": _problem_response(
        "`_bulk` in place of an id names the bulk endpoint, which takes POST only.",
        header_refs("Allow"),
    ),
    "NotAcceptable": _problem_response(
        "The request's Accept takes neither application/json nor application/problem+json (an absent Accept does)."
    ),
    "ContentTooLarge": _problem_response(
        "The body is larger than the service accepts, or carries more items than one request may "
        "(`urn:restengine:problem:too-many-items`, with `max_items`); nothing was written."
    ),
    "URITooLong": {
        "description": (
            "The request line is longer than the HTTP server in front of the app accepts "
            "(gunicorn's `limit_request_line`, nginx's buffers); its own error page, not problem+json."
        )
    },
    "UnsupportedMediaType": _problem_response("The body is not application/json."),
    "PatchMediaType": _problem_response(
        "The body is neither application/merge-patch+json nor application/json.",
        header_refs("Accept-Patch"),
    ),
    "UnprocessableContent": _problem_response(
        "The body does not fit the resource: the Document's validation, unknown or read-only fields, "
        "references to missing documents (`errors` by field, or by index); a body nested deeper than 100 "
        "levels; an Idempotency-Key already used for a different request. For a list: "
        "`urn:restengine:problem:query-too-expensive`, the database stopped an expensive query at its time limit."
    ),
    "Unauthorized": _problem_response(
        "The credentials sent are not valid, or none were sent for what anonymous callers may not do.",
        header_refs("WWW-Authenticate"),
    ),
    "Forbidden": _problem_response("The caller's roles do not allow this action on this resource."),
    "TooManyRequests": _problem_response(
        "`urn:restengine:problem:rate-limited`: the caller's rate limit is spent until the window ends "
        "(`RateLimit` says when); `urn:restengine:problem:too-many-expensive-queries`: the caller already runs "
        "as many expensive queries (index-less filters, counts no index serves) as it may at once.",
        header_refs("Retry-After", "RateLimit", "RateLimit-Policy"),
    ),
    "InternalServerError": _problem_response("An unexpected failure (logged; no details are sent)."),
    "ServiceUnavailable": _problem_response(
        "The database did not answer within the request's time budget; for a write, before it was sent: "
        "nothing was written, retrying is safe.",
        header_refs("Retry-After"),
    ),
    "OutcomeUnknown": _problem_response(
        "`urn:restengine:problem:outcome-unknown`: the write was sent and its answer did not come; it may or "
        "may not have been applied. Retry with the same Idempotency-Key, or read the item first."
    ),
}
