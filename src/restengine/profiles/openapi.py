"""The OpenAPI paths of the resources in a compatibility profile's shapes (Eve's, Flask-MongoRest's).

Each item is described by the native schema of its resource with the profile's changes stated (``_id`` for
``id``, dates in RFC 1123 for Eve, Python's ``isoformat()`` for Flask-MongoRest); the envelopes, parameters
and error bodies are the profile's own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from restengine.api.fields import ref
from restengine.api.openapi.components import header_refs
from restengine.constants import JSON

if TYPE_CHECKING:
    from restengine.api.openapi.schemas import Schemas
    from restengine.api.resource import Resource

EVE_ERROR = {
    "type": "object",
    "required": ["_status", "_error"],
    "properties": {
        "_status": {"const": "ERR"},
        "_error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
        },
        "_issues": {"type": "object", "description": "422: a message per field (nested for embedded documents)."},
        "_items": {"type": "array", "description": "422 for a list: each item's `_status` and `_issues`."},
    },
}
MONGOREST_ERROR = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "field-errors": {"type": "object", "description": "A body that does not validate: a message per field."},
    },
}
ERROR_SCHEMAS = {"eve": ("EveError", EVE_ERROR), "mongorest": ("MongoRestError", MONGOREST_ERROR)}
WHY = {
    "400": "A parameter or body it cannot accept.",
    "401": "Credentials are missing or not valid.",
    "403": "The caller's roles do not allow this.",
    "404": "No such resource or item.",
    "405": "A method the URL does not serve.",
    "409": "A unique value is taken.",
    "412": "The item changed since the ETag in If-Match.",
    "422": "The body does not validate.",
    "428": "A write without If-Match.",
    "429": "Too many requests (rate limits, expensive queries).",
    "503": "The database is unavailable or too slow; retry after Retry-After.",
}


def errors(profile: str, *codes: str) -> dict[str, Any]:
    """The error responses ``codes`` in the profile's error shape."""
    name = ERROR_SCHEMAS[profile][0]
    return {
        code: {"description": WHY.get(code, "An error."), "content": {JSON: {"schema": ref(name)}}} for code in codes
    }


def _json_parameter(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": {"type": "string"}}


def _integer(name: str, description: str, minimum: int) -> dict[str, Any]:
    schema = {"type": "integer", "minimum": minimum}
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def _item_id(resource: Resource) -> dict[str, Any]:
    return {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}, "description": "The item's id."}


def eve_paths(schemas: Schemas, resource: Resource, base: str) -> dict[str, Any]:
    """Eve's list, item and write operations of ``resource`` (see :mod:`restengine.profiles.eve`)."""
    native = schemas.read_component(resource)
    item_name, _ = schemas.name(("eve", resource.name), f"Eve{native}")
    schemas.schemas[item_name] = {
        "type": "object",
        "description": (
            f"The fields of {native} with `_id` for `id` and date-times in RFC 1123 "
            "(`Tue, 02 Apr 2013 10:29:13 GMT`), plus Eve's `_etag` and `_links`."
        ),
        "required": ["_id", "_etag", "_links"],
        "properties": {
            "_id": {"type": "string"},
            "_etag": {"type": "string", "description": "Send it back in If-Match to change the item."},
            "_links": {"type": "object"},
        },
    }
    page_name, _ = schemas.name(("eve-page", resource.name), f"Eve{native}Page")
    schemas.schemas[page_name] = {
        "type": "object",
        "required": ["_items", "_links", "_meta"],
        "properties": {
            "_items": {"type": "array", "items": ref(item_name)},
            "_links": {
                "type": "object",
                "description": "`parent`, `self`, and `next`, `prev`, `last` when they exist.",
            },
            "_meta": {
                "type": "object",
                "required": ["page", "max_results"],
                "properties": {
                    "page": {"type": "integer", "minimum": 1},
                    "max_results": {"type": "integer", "minimum": 1, "maximum": resource.options.max_limit},
                    "total": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "Left out when no index serves the count.",
                    },
                },
            },
        },
    }
    tag = [resource.name]
    collection, item = f"{base}/{resource.name}", f"{base}/{resource.name}/{{id}}"
    shaping = [
        _json_parameter("projection", 'Fields to show, `{"title": 1}`, or to leave out, `{"notes": 0}`.'),
        _json_parameter("embedded", 'References to embed, `{"author": 1}`.'),
    ]
    listing = [
        _json_parameter(
            "where",
            "A MongoDB-style filter on the fields and operators the resource allows "
            "(`$eq $ne $gt $gte $lt $lte $in $nin $all $exists $size $and $or $nor`).",
        ),
        _json_parameter("sort", '`-published,title` or `[("published", -1)]`.'),
        _integer(
            "max_results",
            f"Page size (default {resource.options.default_limit}, clamped to {resource.options.max_limit}).",
            1,
        ),
        _integer("page", "Page number (an offset; follow `_links.next` to walk pages cheaply).", 1),
        _json_parameter("cursor", "Set by `_links.next`: the keyset position of the next page."),
    ]
    ok = {
        "200": {
            "description": "A page.",
            "headers": header_refs("X-Total-Count"),
            "content": {JSON: {"schema": ref(page_name)}},
        }
    }
    one = {
        "description": "The item.",
        "headers": header_refs("ETag-required"),
        "content": {JSON: {"schema": ref(item_name)}},
    }
    body = {"required": True, "content": {JSON: {"schema": {"type": ["object", "array"]}}}}
    if_match = {
        "name": "If-Match",
        "in": "header",
        "required": True,
        "schema": {"type": "string"},
        "description": "The item's `_etag` (428 without it, 412 when the item changed).",
    }
    paths: dict[str, Any] = {
        collection: {
            "get": {
                "tags": tag,
                "operationId": f"eve_list_{resource.name}",
                "summary": f"A page of {resource.name}",
                "parameters": listing + shaping,
                "responses": {**ok, **errors("eve", "400", "503")},
            }
        },
        item: {
            "get": {
                "tags": tag,
                "operationId": f"eve_get_{resource.name}",
                "summary": "One item",
                "parameters": [_item_id(resource), *shaping],
                "responses": {"200": one, **errors("eve", "404", "503")},
            }
        },
    }
    methods = resource.methods
    if "POST" in methods:
        paths[collection]["post"] = {
            "tags": tag,
            "operationId": f"eve_create_{resource.name}",
            "summary": "Create one item or a list",
            "requestBody": body,
            "responses": {
                "201": {
                    "description": "Created: `_status` OK and the stored item(s).",
                    "content": {JSON: {"schema": {"type": "object"}}},
                },
                **errors("eve", "400", "409", "422", "503"),
            },
        }
    for method, summary in (("patch", "Change some fields"), ("put", "Replace the item"), ("delete", "Delete")):
        if method.upper() in methods:
            operation: dict[str, Any] = {
                "tags": tag,
                "operationId": f"eve_{method}_{resource.name}",
                "summary": summary,
                "parameters": [_item_id(resource), if_match],
                "responses": {
                    **({"204": {"description": "Deleted."}} if method == "delete" else {"200": one}),
                    **errors("eve", "404", "412", "422", "428", "503"),
                },
            }
            if method != "delete":
                operation["requestBody"] = {"required": True, "content": {JSON: {"schema": {"type": "object"}}}}
            paths[item][method] = operation
    return paths


def mongorest_paths(schemas: Schemas, resource: Resource, base: str) -> dict[str, Any]:
    """Flask-MongoRest's list, item and write operations of ``resource`` (see :mod:`restengine.profiles.mongorest`)."""
    native = schemas.read_component(resource)
    page_name, _ = schemas.name(("mongorest-page", resource.name), f"MongoRest{native}Page")
    schemas.schemas[page_name] = {
        "type": "object",
        "required": ["data", "has_more"],
        "properties": {
            "data": {"type": "array", "items": {"type": "object", "description": f"{native}, dates in isoformat()."}},
            "has_more": {"type": "boolean"},
        },
    }
    tag = [resource.name]
    collection, item = f"{base}/{resource.name}/", f"{base}/{resource.name}/{{id}}/"
    listing = [
        _integer("_skip", "Items to skip.", 0),
        _integer(
            "_limit", f"Page size (default {resource.options.default_limit}, at most {resource.options.max_limit}).", 0
        ),
        _json_parameter("_order_by", "`-published,title`."),
        _json_parameter("_fields", "Fields to show, comma-separated (`_all`: every one)."),
    ]
    shown = {"description": "The item.", "content": {JSON: {"schema": {"type": "object"}}}}
    paths: dict[str, Any] = {
        collection: {
            "get": {
                "tags": tag,
                "operationId": f"mongorest_list_{resource.name}",
                "summary": f"A page of {resource.name}; filters are `field__op=value`",
                "parameters": listing,
                "responses": {
                    "200": {"description": "A page.", "content": {JSON: {"schema": ref(page_name)}}},
                    **errors("mongorest", "400", "503"),
                },
            }
        },
        item: {
            "get": {
                "tags": tag,
                "operationId": f"mongorest_get_{resource.name}",
                "summary": "One item",
                "parameters": [_item_id(resource)],
                "responses": {"200": shown, **errors("mongorest", "404")},
            }
        },
    }
    methods = resource.methods
    body = {"required": True, "content": {JSON: {"schema": {"type": "object"}}}}
    if "POST" in methods:
        paths[collection]["post"] = {
            "tags": tag,
            "operationId": f"mongorest_create_{resource.name}",
            "summary": "Create an item",
            "requestBody": body,
            "responses": {"200": shown, **errors("mongorest", "400", "409", "503")},
        }
    if "PUT" in methods:
        paths[item]["put"] = {
            "tags": tag,
            "operationId": f"mongorest_update_{resource.name}",
            "summary": "Set the fields sent",
            "parameters": [_item_id(resource)],
            "requestBody": body,
            "responses": {"200": shown, **errors("mongorest", "400", "404", "409", "503")},
        }
    if "DELETE" in methods:
        paths[item]["delete"] = {
            "tags": tag,
            "operationId": f"mongorest_delete_{resource.name}",
            "summary": "Delete",
            "parameters": [_item_id(resource)],
            "responses": {
                "200": {"description": "`{}`", "content": {JSON: {"schema": {"type": "object"}}}},
                **errors("mongorest", "404", "503"),
            },
        }
    return paths


PATHS = {"eve": eve_paths, "mongorest": mongorest_paths}
