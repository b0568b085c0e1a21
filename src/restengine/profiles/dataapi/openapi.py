"""The Data API's actions in the OpenAPI document: request bodies, results and errors (OpenAPI 3.1)."""

from __future__ import annotations

from typing import Any

from restengine.profiles.dataapi.bodies import COMMON, EJSON, JSON, MEMBERS
from restengine.profiles.dataapi.pipeline import MAX_STAGES, STAGES
from restengine.profiles.dataapi.updates import UPDATE_OPERATORS

_ANY_OBJECT: dict[str, Any] = {"type": "object"}

_SUMMARIES = {
    "findOne": "Find one document",
    "find": "Find documents",
    "insertOne": "Insert one document",
    "insertMany": "Insert documents (all or none)",
    "updateOne": "Update one document",
    "updateMany": "Update documents",
    "replaceOne": "Replace one document",
    "deleteOne": "Delete one document",
    "deleteMany": "Delete documents",
    "aggregate": "Run an aggregation pipeline",
}
_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "error_code", "link"],
    "properties": {
        "error": {"type": "string", "description": "What went wrong."},
        "error_code": {"type": "string", "examples": ["InvalidParameter", "MissingParameter", "InvalidSession"]},
        "link": {"type": "string", "description": "A URI naming the kind of problem."},
    },
}
_ERROR_STATUSES = {
    "400": "A member is missing or not allowed (InvalidParameter, MissingParameter).",
    "401": "No valid credentials for this (InvalidSession): send apiKey or Authorization: Bearer.",
    "403": "The access policy or the configuration refuses it (NoMatchingRuleFound).",
    "404": "No such action, or the collection is not served in that database (NotFound).",
    "409": "A unique index or a delete rule refuses the write (Conflict).",
    "415": "The body is neither application/json nor application/ejson (UnsupportedMediaType).",
    "422": "A document is not valid for its resource (UnprocessableEntity).",
    "429": "Past the caller's rate limit or budget of expensive queries (TooManyRequests).",
}
_COUNT: dict[str, Any] = {"type": "integer", "minimum": 0}
_UPDATED: dict[str, Any] = {
    "type": "object",
    "required": ["matchedCount", "modifiedCount"],
    "properties": {"matchedCount": _COUNT, "modifiedCount": _COUNT, "upsertedId": {}},
}
_DOCUMENTS: dict[str, Any] = {
    "type": "object",
    "required": ["documents"],
    "properties": {"documents": {"type": "array", "items": _ANY_OBJECT}},
}
_DELETED: dict[str, Any] = {"type": "object", "required": ["deletedCount"], "properties": {"deletedCount": _COUNT}}
_RESULTS: dict[str, dict[str, Any]] = {
    "findOne": {"type": "object", "required": ["document"], "properties": {"document": {"type": ["object", "null"]}}},
    "find": _DOCUMENTS,
    "insertOne": {"type": "object", "required": ["insertedId"], "properties": {"insertedId": {}}},
    "insertMany": {"type": "object", "required": ["insertedIds"], "properties": {"insertedIds": {"type": "array"}}},
    "updateOne": _UPDATED,
    "updateMany": _UPDATED,
    "replaceOne": _UPDATED,
    "deleteOne": _DELETED,
    "deleteMany": _DELETED,
    "aggregate": _DOCUMENTS,
}


def _request_schema(action: str, collections: list[str], max_batch: int) -> dict[str, Any]:
    members: dict[str, Any] = {
        "dataSource": {"type": "string", "minLength": 1, "description": "Any name (RestEngine serves one)."},
        "database": {"type": "string", "description": "The database RestEngine serves."},
        "collection": {"type": "string", "enum": collections, "description": "A served collection or resource."},
        "filter": {**_ANY_OBJECT, "description": "A query on the API's field names (whitelisted operators)."},
        "projection": {"type": "object", "additionalProperties": {"enum": [0, 1]}},
        "sort": {"type": "object", "additionalProperties": {"enum": [1, -1]}},
        "limit": {"type": "integer", "minimum": 0},
        "skip": {"type": "integer", "minimum": 0},
        "document": _ANY_OBJECT,
        "documents": {"type": "array", "items": _ANY_OBJECT, "minItems": 1, "maxItems": max_batch},
        "update": {"type": "object", "minProperties": 1, "propertyNames": {"enum": list(UPDATE_OPERATORS)}},
        "replacement": _ANY_OBJECT,
        "upsert": {"type": "boolean", "default": False},
        "pipeline": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_STAGES,
            "items": {
                "type": "object",
                "minProperties": 1,
                "maxProperties": 1,
                "propertyNames": {"enum": list(STAGES)},
            },
        },
    }
    names = (*COMMON, *MEMBERS[action])
    required = [
        *COMMON,
        *(n for n in MEMBERS[action] if n in ("document", "documents", "update", "replacement", "pipeline")),
    ]
    return {
        "type": "object",
        "required": required,
        "properties": {name: members[name] for name in names},
        "additionalProperties": False,
    }


def paths(base_path: str, actions: tuple[str, ...], collections: list[str], max_batch: int) -> dict[str, Any]:
    """The path item of each action under ``base_path``; ``collections``: the names ``collection`` may take."""
    return {f"{base_path}/action/{action}": {"post": _operation(action, collections, max_batch)} for action in actions}


def _operation(action: str, collections: list[str], max_batch: int) -> dict[str, Any]:
    body = _request_schema(action, collections, max_batch)
    result = _RESULTS[action]
    error = {"content": {JSON: {"schema": _ERROR_SCHEMA}}}
    return {
        "operationId": f"dataApi{action[0].upper()}{action[1:]}",
        "summary": _SUMMARIES[action],
        "tags": ["Atlas Data API"],
        "requestBody": {"required": True, "content": {JSON: {"schema": body}, EJSON: {"schema": body}}},
        "responses": {
            "200": {"description": "Done.", "content": {JSON: {"schema": result}, EJSON: {"schema": result}}},
            **{status: {**error, "description": text} for status, text in _ERROR_STATUSES.items()},
        },
    }
