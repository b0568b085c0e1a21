"""Request and response bodies: JSON or EJSON in, JSON or canonical EJSON out, documents named as the API names them.

The Data API's "Data Formats" page (mongodb.com/docs/atlas/app-services/data-api/data-formats) says: bodies are
JSON or EJSON; ``Accept`` picks the response format over the app's default return type; requests may use
canonical or relaxed EJSON; EJSON responses are canonical; JSON shows an ObjectId as its hex string, a date as
ISO 8601 and a decimal as a string (RestEngine's native representation does the same).

RestEngine decides what the page leaves open: JSON is the default response format (each app chose its own), and
a body is read as EJSON whether it is sent as ``application/json`` or ``application/ejson`` (the page allows
EJSON in any request; an object such as ``{"$oid": ...}`` is no valid document or value in plain JSON anyway, so
reading it as EJSON never changes what a plain JSON body means).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
from bson import json_util
from bson.binary import UuidRepresentation
from bson.errors import BSONError
from bson.json_util import JSONOptions
from flask import request
from mongoengine.base import get_document
from mongoengine.errors import NotRegistered
from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from restengine.api import jsonquery
from restengine.api.codec import jsonable
from restengine.api.fields import field_type, plan, stored_class
from restengine.api.fields.base import Unreadable
from restengine.api.fields.compound import EmbeddedType, GenericEmbeddedType, ListType, MapType
from restengine.api.views import MAX_BODY_DEPTH, too_deep
from restengine.errors import InvalidParameter, Problem, UnsupportedMediaType
from restengine.profiles.dataapi.shape import MissingParameter

if TYPE_CHECKING:
    from restengine.api.resource import Resource

JSON = "application/json"
EJSON = "application/ejson"
COMMON = ("dataSource", "database", "collection")
MEMBERS: dict[str, tuple[str, ...]] = {
    "findOne": ("filter", "projection"),
    "find": ("filter", "projection", "sort", "limit", "skip"),
    "insertOne": ("document",),
    "insertMany": ("documents",),
    "updateOne": ("filter", "update", "upsert"),
    "updateMany": ("filter", "update", "upsert"),
    "replaceOne": ("filter", "replacement", "upsert"),
    "deleteOne": ("filter",),
    "deleteMany": ("filter",),
    "aggregate": ("pipeline",),
}
"""The members each action takes besides :data:`COMMON` (the OpenAPI reference's request bodies)."""
MAX_INT = 2**31 - 1  # the largest limit or skip accepted


def read_body() -> dict[str, Any]:
    """The request's JSON object, not yet read as EJSON. 415 for another media type, 400 if not an object."""
    if request.mimetype not in (JSON, EJSON):
        raise UnsupportedMediaType(f"Send the body as {JSON} or {EJSON}.")
    data = request.get_data(cache=False)  # 413 past MAX_CONTENT_LENGTH
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidParameter("body", f"not valid JSON: {exc}") from None
    if too_deep(body) is not None:
        raise InvalidParameter("body", f"nested too deeply (at most {MAX_BODY_DEPTH} levels of lists and objects)")
    if not isinstance(body, dict):
        raise InvalidParameter("body", "must be a JSON object")
    return body


def response_format(accept: str | None) -> str:
    """The response's media type: ``Accept``'s pick of JSON and EJSON; JSON when it takes either (or is absent).

    The Data API let each app choose its default return type; RestEngine's is JSON (see the module).
    """
    if not accept:
        return JSON
    best = parse_accept_header(accept, MIMEAccept).best_match((JSON, EJSON))
    if best is None:
        raise Problem(f"The Data API answers {JSON} or {EJSON}; the request's Accept allows neither.", status=406)
    return str(best)


def ejson_options(resource: Resource, mode: int) -> JSONOptions:
    """EJSON read or written as the resource's collection stores UUIDs (``RESTENGINE_UUID_REPRESENTATION``)."""
    uuids = resource.collection().codec_options.uuid_representation
    if uuids == UuidRepresentation.UNSPECIFIED:
        uuids = UuidRepresentation.STANDARD
    return JSONOptions(json_mode=mode, uuid_representation=uuids, tz_aware=False)


def from_ejson(value: Any, options: JSONOptions) -> Any:
    """A parsed JSON value read as (canonical or relaxed) EJSON: ``{"$oid": ...}`` an ObjectId and so on.

    Depth is bounded already (:func:`read_body`). A malformed EJSON value is a 400.
    """
    if isinstance(value, list):
        return [from_ejson(item, options) for item in value]
    if not isinstance(value, dict):
        return value
    converted = {key: from_ejson(item, options) for key, item in value.items()}
    try:
        return json_util.object_hook(converted, options)
    except (ValueError, TypeError, KeyError, OverflowError, BSONError) as exc:
        raise InvalidParameter("body", f"not valid Extended JSON: {exc}") from None


def plain(value: Any, param: str) -> Any:
    """An EJSON value as the plain JSON the write path reads (an ObjectId as its hex, a date as ISO 8601...)."""
    try:
        return jsonable(value)
    except Unreadable as exc:
        raise InvalidParameter(param, str(exc)) from None


def plain_output(value: Any) -> Any:
    """A result as the Data API's JSON format (relaxed EJSON for what plain JSON cannot hold)."""
    try:
        return jsonable(value)
    except Unreadable:
        return json.loads(json_util.dumps(value, json_options=json_util.RELAXED_JSON_OPTIONS))


@dataclasses.dataclass
class Call:
    """One action's request: its members (read as EJSON once its collection is known) and the response format."""

    action: str
    body: dict[str, Any]
    ejson_out: bool

    def check_members(self) -> None:
        allowed = set(COMMON) | set(MEMBERS[self.action])
        unknown = sorted(set(self.body) - allowed)
        if unknown:
            raise InvalidParameter(
                unknown[0], f"{self.action} takes no such member (it takes {', '.join(sorted(allowed))})"
            )

    def member(self, name: str, kind: type | tuple[type, ...], what: str, *, required: bool = False) -> Any:
        """The member ``name`` if it is a ``kind`` (a JSON true/false is never a number); ``None`` if absent."""
        if name not in self.body or (self.body[name] is None and not required):
            if required:
                raise MissingParameter(name, f"{self.action} needs {name}")  # the whole message (see message)
            return None
        value = self.body[name]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise InvalidParameter(name, f"must be {what}")
        return value

    def text(self, name: str) -> str:
        value: str = self.member(name, str, "a string", required=True)
        if not value.strip():
            raise InvalidParameter(name, "must not be empty")
        return value

    def count(self, name: str) -> int:
        """A non-negative integer member (``limit``, ``skip``), 0 when absent."""
        value = self.member(name, int, "an integer")
        if value is None:
            return 0
        if not 0 <= value <= MAX_INT:
            raise InvalidParameter(name, f"must be between 0 and {MAX_INT}")
        return int(value)

    def filter(self) -> dict[str, Any]:
        found: dict[str, Any] = self.member("filter", dict, "an object") or {}
        return found


@dataclasses.dataclass(frozen=True)
class Shown:
    """What a read returns of each document: these fields, with or without ``_id``."""

    fields: frozenset[str]
    with_id: bool


def projection(resource: Resource, spec: Mapping[str, Any] | None) -> Shown:
    """A ``projection`` (``{"title": 1}``, ``{"bio": 0}``, ``{"_id": 0}``) as the fields to return.

    Only exposed top-level fields can be named (:func:`jsonquery.parse_projection`); ``_id`` may be left out.
    """
    if not spec:
        return Shown(resource.exposed, True)
    flag = spec.get("_id", 1)
    if not isinstance(flag, (bool, int)):
        raise InvalidParameter("projection", "_id takes 0 or 1")
    rest = {key: value for key, value in spec.items() if key != "_id"}
    if rest:
        return Shown(jsonquery.parse_projection(resource, rest, "projection"), bool(flag))
    return Shown(frozenset({resource.pk}) if flag else resource.exposed, bool(flag))


def with_id(item: dict[str, Any], shown: Shown) -> dict[str, Any]:
    """A native representation as the Data API shows it: ``id`` as ``_id``, first (or left out)."""
    pk = item.pop("id", None)
    return {"_id": pk, **item} if shown.with_id else item


def typed_document(resource: Resource, raw: Mapping[str, Any], shown: Shown) -> dict[str, Any]:
    """A stored document with BSON values (for canonical EJSON), named and limited as the native representation is.

    The JSON format shows :func:`reads.decode`'s representation; EJSON shows the stored values themselves
    (an int64, a double, a date), under the same attribute names and with the same fields hidden.
    """
    hidden = resource.hidden_for(raw.get("_cls")) if resource.with_cls else frozenset()
    cls = resource.doc_cls
    out: dict[str, Any] = {"_id": raw.get("_id")} if shown.with_id else {}
    if resource.with_cls and "_cls" in raw:
        out["_cls"] = raw["_cls"]
        with contextlib.suppress(Unreadable):
            cls = stored_class(resource.doc_cls, raw["_cls"])
    for name, db_field, _, missing in plan(cls):
        if name in shown.fields and name not in hidden:
            out[name] = _typed_value(cls._fields[name], raw[db_field]) if db_field in raw else missing
    return out


def _typed_value(field: Any, value: Any, depth: int = 0) -> Any:
    """A stored value with embedded documents named by attribute (as the representation names them)."""
    if value is None or depth > MAX_BODY_DEPTH:
        return value
    kind = field_type(field)
    if isinstance(kind, (EmbeddedType, GenericEmbeddedType)) and isinstance(value, dict):
        return _typed_embedded(field.document_type if isinstance(kind, EmbeddedType) else None, value, depth + 1)
    if isinstance(kind, ListType) and isinstance(value, list) and field.field is not None:
        return [_typed_value(field.field, item, depth + 1) for item in value]
    if isinstance(kind, MapType) and isinstance(value, dict) and field.field is not None:
        return {key: _typed_value(field.field, item, depth + 1) for key, item in value.items()}
    return value


def _typed_embedded(declared: type[Any] | None, raw: dict[str, Any], depth: int) -> Any:
    cls = declared
    try:
        if "_cls" in raw:
            cls = stored_class(declared, raw["_cls"]) if declared is not None else get_document(raw["_cls"])
    except (Unreadable, NotRegistered):  # a _cls naming no class: shown as stored
        return raw
    if cls is None:
        return raw
    out: dict[str, Any] = {"_cls": raw["_cls"]} if "_cls" in raw else {}
    for name, db_field, _, missing in plan(cls):
        out[name] = _typed_value(cls._fields[name], raw[db_field], depth) if db_field in raw else missing
    return out


def as_document(body: Any, param: str) -> Any:
    """A Data API document for the write path: ``_id`` is the key the native API calls ``id``."""
    if not isinstance(body, dict) or "_id" not in body:
        return body
    out = {key: value for key, value in body.items() if key != "_id"}
    if "id" in out and out["id"] != body["_id"]:
        raise InvalidParameter(param, "_id and id differ")
    out["id"] = body["_id"]
    return out
