"""The MongoDB Atlas Data API (v1) over the served resources: ``POST <base>/action/<action>``.

Clients written for the Data API (switched off by MongoDB in September 2025)
keep working: the same actions, request members and response bodies, over
RestEngine's resources, through the same access policy, validation, hidden and
read-only fields, hooks, cache invalidation and query budgets as the native
API. Nothing a client sends reaches MongoDB unparsed: filters go through
:mod:`restengine.api.jsonquery`'s whitelist, updates are applied to the
document as the API shows it and saved through :mod:`restengine.api.writes`
(exactly as a PATCH or PUT), inserts and deletes through the same functions as
POST and DELETE, and ``aggregate`` runs a pipeline whose stages and operators
are checked one by one behind a ``$match`` of the caller's scope and a
``$project`` of the fields it may see.

What the Data API documented, and this module follows:

* Its OpenAPI reference (mongodb.com/docs/api/doc/atlas-data-api-v1, one page
  per action: ``operation-findone`` ... ``operation-aggregate``): the request
  members of each action (``dataSource``, ``database``, ``collection`` always
  required), the response bodies (``{"document"}``, ``{"documents"}``,
  ``{"insertedId"}``, ``{"insertedIds"}``, ``{"matchedCount", "modifiedCount",
  "upsertedId"}``, ``{"deletedCount"}``), status 200 for every action, and the
  error body ``{"error", "error_code", "link"}`` with the codes
  ``InvalidParameter`` and ``MissingParameter`` (400) and ``InvalidSession``
  (401); its curl examples send the key as an ``apiKey`` header.
* Its "Data Formats" page (mongodb.com/docs/atlas/app-services/data-api/data-formats):
  bodies are JSON or EJSON; ``Accept`` picks the response format over the
  app's default; requests may use canonical or relaxed EJSON; EJSON responses
  are canonical. JSON responses show an ObjectId as its hex string, a date as
  ISO 8601, a decimal as a string: what RestEngine's native representation is.

Where the documentation is silent, this module decides (each is documented
where it is done): the default response format is JSON; ``application/json``
bodies are read as plain JSON and ``application/ejson`` ones as EJSON;
``dataSource`` is any non-empty string; ``database`` must be the served
database; field names are the API's (attribute names, ``_id`` for the key);
unknown members are refused; ``find`` without ``limit`` is refused when more
documents match than a page of the resource may hold; errors the Data API did
not document get ``error_code`` :data:`ERROR_CODES`.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import decimal
import json
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import orjson
import pymongo
from bson import json_util
from bson.json_util import JSONMode, JSONOptions
from flask import Flask, Response, request
from mongoengine.base import get_document
from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from restengine.api import jsonquery, pagination, reads, writes
from restengine.api.access import PRINCIPAL
from restengine.api.budget import DEADLINE, query_time
from restengine.api.codec import jsonable, stored_document
from restengine.api.fields import field_type, plan, stored_class
from restengine.api.fields.base import Unreadable
from restengine.api.fields.compound import EmbeddedType, GenericEmbeddedType, ListType, MapType
from restengine.api.model import UnknownField, conjunction, resolve
from restengine.api.outcome import Phases
from restengine.api.views import MAX_BODY_DEPTH, Views, _too_deep
from restengine.constants import ALL_METHODS
from restengine.errors import (
    ERROR_SHAPE,
    Conflict,
    Forbidden,
    InvalidParameter,
    MethodNotAllowed,
    NotFound,
    PreconditionFailed,
    Problem,
    UnsupportedMediaType,
    handled,
    to_problem,
)

if TYPE_CHECKING:
    from restengine.api.registry import Api
    from restengine.api.resource import Resource

JSON = "application/json"
EJSON = "application/ejson"
EXTENSION = "restengine.data_api"
ACTIONS = (
    "findOne",
    "find",
    "insertOne",
    "insertMany",
    "updateOne",
    "updateMany",
    "replaceOne",
    "deleteOne",
    "deleteMany",
    "aggregate",
)
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

ERROR_CODES = {400: "InvalidParameter", 401: "InvalidSession", 403: "NoMatchingRuleFound"}
"""``error_code`` by status. The Data API documented 400 (``InvalidParameter``, ``MissingParameter`` for an
absent member) and 401 (``InvalidSession``); a refusal by the policy is App Services' ``NoMatchingRuleFound``;
any other status is its HTTP reason phrase without spaces (``NotFound``, ``Conflict``, ``TooManyRequests``)."""

RETRIES = 3  # compare-and-set attempts on a document that changes while an update or delete reads and writes it
MAX_INT = 2**31 - 1


class MissingParameter(InvalidParameter):
    """A required member is absent: the Data API's ``MissingParameter`` (400)."""


def _code(problem: Problem) -> str:
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


def _message(problem: Problem) -> str:
    if isinstance(problem, InvalidParameter):
        return f"invalid {problem.param}: {'; '.join(_flatten(problem.errors.get(problem.param)))}"
    text = problem.detail or problem.title
    if problem.errors:
        text += " " + "; ".join(_flatten(problem.errors))
    return text


# ---------------------------------------------------------------- request and response bodies


def _body() -> dict[str, Any]:
    """The request's JSON object, not yet read as EJSON. 415 for another media type, 400 if not an object."""
    if request.mimetype not in (JSON, EJSON):
        raise UnsupportedMediaType(f"Send the body as {JSON} or {EJSON}.")
    data = request.get_data(cache=False)  # 413 past MAX_CONTENT_LENGTH
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidParameter("body", f"not valid JSON: {exc}") from None
    if _too_deep(body) is not None:
        raise InvalidParameter("body", f"nested too deeply (at most {MAX_BODY_DEPTH} levels of lists and objects)")
    if not isinstance(body, dict):
        raise InvalidParameter("body", "must be a JSON object")
    return body


def _response_format(accept: str | None) -> str:
    """The response's media type: ``Accept``'s pick of JSON and EJSON; JSON when it takes either (or is absent).

    The Data API let each app choose its default return type; RestEngine's is JSON (see the module).
    """
    if not accept:
        return JSON
    best = parse_accept_header(accept, MIMEAccept).best_match((JSON, EJSON))
    if best is None:
        raise Problem(f"The Data API answers {JSON} or {EJSON}; the request's Accept allows neither.", status=406)
    return str(best)


def _ejson_options(resource: Resource, mode: JSONMode) -> JSONOptions:
    """EJSON read or written as the resource's collection stores UUIDs (MongoEngine's binary subtype)."""
    codec = resource.collection().codec_options
    return JSONOptions(json_mode=mode, uuid_representation=codec.uuid_representation, tz_aware=False)


def _from_ejson(value: Any, options: JSONOptions) -> Any:
    """A parsed JSON value read as (canonical or relaxed) EJSON: ``{"$oid": ...}`` an ObjectId and so on.

    Depth is bounded already (:func:`_body`). A malformed EJSON value is a 400.
    """
    if isinstance(value, list):
        return [_from_ejson(item, options) for item in value]
    if not isinstance(value, dict):
        return value
    converted = {key: _from_ejson(item, options) for key, item in value.items()}
    try:
        return json_util.object_hook(converted, options)
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise InvalidParameter("body", f"not valid Extended JSON: {exc}") from None


def _plain(value: Any, param: str) -> Any:
    """An EJSON value as the plain JSON the write path reads (an ObjectId as its hex, a date as ISO 8601...)."""
    try:
        return jsonable(value)
    except Unreadable as exc:
        raise InvalidParameter(param, str(exc)) from None


def _plain_output(value: Any) -> Any:
    """A result as the Data API's JSON format (relaxed EJSON for what plain JSON cannot hold)."""
    try:
        return jsonable(value)
    except Unreadable:
        return json.loads(json_util.dumps(value, json_options=json_util.RELAXED_JSON_OPTIONS))


@dataclasses.dataclass
class Call:
    """One action's request: its members, read as EJSON when sent as EJSON, and the response format."""

    action: str
    body: dict[str, Any]
    ejson_in: bool
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
                raise MissingParameter(name, f"{self.action} needs {name}")
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
class _Shown:
    """What a read returns of each document: these fields, with or without ``_id``."""

    fields: frozenset[str]
    with_id: bool


def _projection(resource: Resource, spec: Mapping[str, Any] | None) -> _Shown:
    """A ``projection`` (``{"title": 1}``, ``{"bio": 0}``, ``{"_id": 0}``) as the fields to return.

    Only exposed top-level fields can be named (:func:`jsonquery.parse_projection`); ``_id`` may be left out.
    """
    if not spec:
        return _Shown(resource.exposed, True)
    flag = spec.get("_id", 1)
    if not isinstance(flag, (bool, int)):
        raise InvalidParameter("projection", "_id takes 0 or 1")
    rest = {key: value for key, value in spec.items() if key != "_id"}
    if rest:
        return _Shown(jsonquery.parse_projection(resource, rest, "projection"), bool(flag))
    return _Shown(frozenset({resource.pk}) if flag else resource.exposed, bool(flag))


def _with_id(item: dict[str, Any], shown: _Shown) -> dict[str, Any]:
    """A native representation as the Data API shows it: ``id`` as ``_id``, first (or left out)."""
    pk = item.pop("id", None)
    return {"_id": pk, **item} if shown.with_id else item


def _typed_document(resource: Resource, raw: Mapping[str, Any], shown: _Shown) -> dict[str, Any]:
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
    except Exception:  # a _cls naming no class: shown as stored, as the native representation cannot read it
        return raw
    if cls is None:
        return raw
    out: dict[str, Any] = {"_cls": raw["_cls"]} if "_cls" in raw else {}
    for name, db_field, _, missing in plan(cls):
        out[name] = _typed_value(cls._fields[name], raw[db_field], depth) if db_field in raw else missing
    return out


def _as_document(body: Any, param: str) -> Any:
    """A Data API document for the write path: ``_id`` is the key the native API calls ``id``."""
    if not isinstance(body, dict) or "_id" not in body:
        return body
    out = {key: value for key, value in body.items() if key != "_id"}
    if "id" in out and out["id"] != body["_id"]:
        raise InvalidParameter(param, "_id and id differ")
    out["id"] = body["_id"]
    return out


# ---------------------------------------------------------------- update documents


UPDATE_OPERATORS = ("$set", "$unset", "$inc", "$push", "$pull", "$addToSet")


@dataclasses.dataclass(frozen=True)
class _Change:
    """One ``{"$op": {"path": value}}`` of an update document, checked."""

    op: str
    path: tuple[str, ...]
    value: Any
    decimal: bool  # the field stores a decimal (shown as a string): ``$inc`` adds exactly


def parse_update(resource: Resource, spec: Mapping[str, Any]) -> list[_Change]:
    """The changes an ``update`` document asks for: only :data:`UPDATE_OPERATORS`, on fields the caller may write.

    A path names a writable top-level field, then keys of embedded objects or list positions; ``_id``, ``$``
    positional paths and ``__`` are refused. Raises :class:`InvalidParameter` ("update").
    """
    if not spec:
        raise InvalidParameter("update", f"needs at least one of {', '.join(UPDATE_OPERATORS)}")
    changes: list[_Change] = []
    for op, fields in spec.items():
        if op not in UPDATE_OPERATORS:
            hint = "" if str(op).startswith("$") else " (to replace a whole document, use replaceOne)"
            raise InvalidParameter("update", f"{op!r} is not allowed: only {', '.join(UPDATE_OPERATORS)}{hint}")
        if not isinstance(fields, dict) or not fields:
            raise InvalidParameter("update", f"{op} takes an object of field paths")
        for name, value in fields.items():
            path = _update_path(resource, name)
            plain = _plain(value, "update")
            _check_operand(op, name, plain)
            changes.append(_Change(op, path, plain, _is_decimal(resource, path)))
    paths = sorted(change.path for change in changes)
    for first, second in zip(paths, paths[1:], strict=False):
        if second[: len(first)] == first:
            raise InvalidParameter("update", f"{'.'.join(first)!r} and {'.'.join(second)!r} conflict")
    return changes


def _update_path(resource: Resource, name: Any) -> tuple[str, ...]:
    if not isinstance(name, str) or not name or "__" in name or "\0" in name:
        raise InvalidParameter("update", f"{name!r} is not a field path")
    path = tuple(name.split("."))
    if any(not part or part.startswith("$") for part in path):
        raise InvalidParameter("update", f"{name!r}: empty steps and positional operators ($) are not supported")
    if path[0] in ("_id", "id", resource.pk):
        raise InvalidParameter("update", "_id cannot be changed")
    if path[0] not in resource.writable:
        raise InvalidParameter("update", f"{path[0]!r} is not a field you may change")  # unknown, hidden or read-only
    return path


def _check_operand(op: str, name: str, value: Any) -> None:
    if op == "$inc" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise InvalidParameter("update", f"$inc on {name!r} takes a number")
    if op in ("$push", "$addToSet") and isinstance(value, dict) and any(str(k).startswith("$") for k in value):
        if set(value) != {"$each"} or not isinstance(value["$each"], list):
            raise InvalidParameter("update", f"{op} on {name!r}: of the modifiers, only $each (a list) is supported")
    if op == "$pull" and isinstance(value, dict) and any(str(k).startswith("$") for k in value):
        raise InvalidParameter("update", f"$pull on {name!r} takes a value or an object to match, not a condition")


def _is_decimal(resource: Resource, path: tuple[str, ...]) -> bool:
    try:
        field = resolve(resource.doc_cls, "__".join(p for p in path if not p.isdigit())).field
    except UnknownField:
        return False
    return bool(field_type(field).__class__.__name__ == "DecimalType")


def apply_changes(document: Mapping[str, Any], changes: list[_Change]) -> dict[str, Any]:
    """``document`` (a JSON representation) with ``changes`` applied, as MongoDB would apply them to it."""
    out = copy.deepcopy(dict(document))
    for change in changes:
        container, key = _locate(out, change)
        if container is not None:
            _APPLY[change.op](container, key, change)
    return out


def _locate(document: dict[str, Any], change: _Change) -> tuple[Any, Any]:
    """The object (or list) holding the last step of ``change.path``, and that step; (None, None) when absent
    for an operator that then does nothing ($unset, $pull). Missing objects on the way are made."""
    current: Any = document
    for depth, step in enumerate(change.path):
        key: Any = step
        if isinstance(current, list):
            if not step.isdigit() or int(step) >= len(current) + (depth == len(change.path) - 1):
                raise InvalidParameter("update", f"{'.'.join(change.path)!r}: no list position {step}")
            key = int(step)
        elif not isinstance(current, dict):
            raise InvalidParameter("update", f"{'.'.join(change.path)!r} goes through a value that is not an object")
        if depth == len(change.path) - 1:
            return current, key
        child = current[key] if isinstance(current, list) or key in current else None
        if child is None:
            if change.op in ("$unset", "$pull"):
                return None, None
            child = current[key] = {}
        current = child
    return None, None  # not reached: a path has at least one step


def _put(container: Any, key: Any, value: Any) -> None:
    if isinstance(container, list) and key == len(container):
        container.append(value)
    else:
        container[key] = value


def _set(container: Any, key: Any, change: _Change) -> None:
    _put(container, key, change.value)


def _unset(container: Any, key: Any, change: _Change) -> None:
    if len(change.path) == 1 or isinstance(container, list):
        container[key] = None  # a top-level field reads as null once unset; a list keeps its positions
    else:
        container.pop(key, None)


def _inc(container: Any, key: Any, change: _Change) -> None:
    current = container[key] if isinstance(container, list) else container.get(key)
    name = ".".join(change.path)
    if current is None:
        current = "0" if change.decimal else 0
    if change.decimal and isinstance(current, (str, int, float)) and not isinstance(current, bool):
        try:
            _put(container, key, str(decimal.Decimal(str(current)) + decimal.Decimal(str(change.value))))
        except decimal.InvalidOperation:
            raise InvalidParameter("update", f"$inc: {name!r} does not hold a number") from None
        return
    if isinstance(current, bool) or not isinstance(current, (int, float)):
        raise InvalidParameter("update", f"$inc: {name!r} does not hold a number")
    _put(container, key, current + change.value)


def _list_at(container: Any, key: Any, change: _Change) -> list[Any]:
    current = container[key] if isinstance(container, list) else container.get(key)
    if current is None:
        current = []
        _put(container, key, current)
    if not isinstance(current, list):
        raise InvalidParameter("update", f"{change.op}: {'.'.join(change.path)!r} does not hold a list")
    return current


def _items(change: _Change) -> list[Any]:
    value = change.value
    return list(value["$each"]) if isinstance(value, dict) and "$each" in value else [value]


def _push(container: Any, key: Any, change: _Change) -> None:
    _list_at(container, key, change).extend(_items(change))


def _add_to_set(container: Any, key: Any, change: _Change) -> None:
    current = _list_at(container, key, change)
    for item in _items(change):
        if item not in current:
            current.append(item)


def _pull(container: Any, key: Any, change: _Change) -> None:
    current = container[key] if isinstance(container, list) else container.get(key)
    if not isinstance(current, list):
        return
    wanted = change.value

    def matches(item: Any) -> bool:
        if isinstance(wanted, dict):  # an object matches elements holding all of its members
            return isinstance(item, dict) and all(item.get(k) == v for k, v in wanted.items())
        return bool(item == wanted)

    _put(container, key, [item for item in current if not matches(item)])


_APPLY: dict[str, Callable[[Any, Any, _Change], None]] = {
    "$set": _set,
    "$unset": _unset,
    "$inc": _inc,
    "$push": _push,
    "$pull": _pull,
    "$addToSet": _add_to_set,
}


def equalities(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a filter fixes by equality (top level and inside ``$and``): what an upsert inserts.

    Dotted paths become nested objects; values are plain JSON.
    """
    out: dict[str, Any] = {}
    for key, value in spec.items():
        if key == "$and" and isinstance(value, list):
            for part in value:
                if isinstance(part, Mapping):
                    _merge(out, equalities(part))
        elif key.startswith("$"):
            continue
        elif isinstance(value, Mapping) and value and all(str(k).startswith("$") for k in value):
            if "$eq" in value:
                _nest(out, key, _plain(value["$eq"], "filter"))
        else:
            _nest(out, key, _plain(value, "filter"))
    return out


def _nest(out: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        child = out.get(part)
        if not isinstance(child, dict):
            child = out[part] = {}
        out = child
    out[last] = value


def _merge(out: dict[str, Any], more: Mapping[str, Any]) -> None:
    for key, value in more.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            _merge(out[key], value)
        else:
            out[key] = value


# ---------------------------------------------------------------- aggregation pipelines

STAGES = ("$match", "$project", "$sort", "$limit", "$skip", "$group", "$count", "$unwind", "$lookup")
ACCUMULATORS = frozenset({"$sum", "$avg", "$min", "$max", "$first", "$last", "$push", "$addToSet", "$count"})
EXPRESSIONS = frozenset(
    {
        "$add", "$subtract", "$multiply", "$divide", "$mod", "$abs", "$floor", "$ceil", "$round",
        "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$cmp", "$and", "$or", "$not", "$cond", "$ifNull",
        "$concat", "$toLower", "$toUpper", "$strLenCP", "$size",
        "$year", "$month", "$dayOfMonth", "$dayOfWeek", "$hour", "$minute", "$second",
    }
)  # fmt: skip
"""Expression operators a pipeline may use: arithmetic, comparison, conditions, a few string, array and date
parts. Nothing that runs code (``$function``, ``$accumulator``, ``$where``) or reads variables (``$$``)."""
QUERY_OPERATORS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$size", "$all"})
MAX_EXPRESSION_DEPTH = 8
MAX_STAGES = 20
MAX_SORT_KEYS = pagination.MAX_SORT_KEYS


def _name(value: Any, where: str, *, dotted: bool = True) -> str:
    """A field name (or dotted path) a pipeline stage may write or read: no ``$`` step, ``__``, NUL."""
    if not isinstance(value, str) or not value or "__" in value or "\0" in value:
        raise InvalidParameter("pipeline", f"{where}: {value!r} is not a field name")
    steps = value.split(".")
    if (not dotted and len(steps) > 1) or any(not step or step.startswith("$") for step in steps):
        raise InvalidParameter("pipeline", f"{where}: {value!r} is not a field name")
    return value


def _reference(value: str, where: str) -> str:
    """``"$field"``, a reference to a field of the stage's input; ``$$`` variables are refused."""
    if value.startswith("$$"):
        raise InvalidParameter("pipeline", f"{where}: variables ({value!r}) are not allowed")
    _name(value[1:], where)
    return value


def _expression(value: Any, where: str, depth: int = 0) -> None:
    """Check an aggregation expression: field references, constants, objects of expressions, and
    :data:`EXPRESSIONS` operators."""
    if depth > MAX_EXPRESSION_DEPTH:
        raise InvalidParameter("pipeline", f"{where}: expressions nest at most {MAX_EXPRESSION_DEPTH} levels")
    if isinstance(value, str) and value.startswith("$"):
        _reference(value, where)
    elif isinstance(value, list):
        for item in value:
            _expression(item, where, depth + 1)
    elif isinstance(value, dict):
        operators = [key for key in value if str(key).startswith("$")]
        if operators and (len(value) != 1 or operators[0] not in EXPRESSIONS):
            raise InvalidParameter("pipeline", f"{where}: operator {operators[0]!r} is not allowed")
        for key, item in value.items():
            if not operators:
                _name(key, where, dotted=False)
            _expression(item, where, depth + 1)


def _query(value: Any, where: str, depth: int = 0) -> None:
    """Check a ``$match`` on a later stage's documents: equality, :data:`QUERY_OPERATORS`, ``$and``/``$or``/``$nor``."""
    if not isinstance(value, dict):
        raise InvalidParameter("pipeline", f"{where}: a query is an object")
    if depth > jsonquery.MAX_DEPTH:
        raise InvalidParameter("pipeline", f"{where}: at most {jsonquery.MAX_DEPTH} levels of $and / $or / $nor")
    for key, condition in value.items():
        if key in jsonquery.LOGICAL:
            if not isinstance(condition, list) or not condition:
                raise InvalidParameter("pipeline", f"{where}: {key} takes a non-empty list of queries")
            for part in condition:
                _query(part, where, depth + 1)
            continue
        if str(key).startswith("$"):
            raise InvalidParameter("pipeline", f"{where}: operator {key!r} is not allowed")
        _name(key, where)
        if isinstance(condition, dict) and any(str(k).startswith("$") for k in condition):
            for op, operand in condition.items():
                if op not in QUERY_OPERATORS:
                    raise InvalidParameter("pipeline", f"{where}: operator {op!r} is not allowed (on {key!r})")
                _constant(operand, where)
        else:
            _constant(condition, where)


def _constant(value: Any, where: str) -> None:
    """A value compared against: plain data, no operators or ``$`` strings inside."""
    if isinstance(value, dict):
        for key, item in value.items():
            if str(key).startswith("$"):
                raise InvalidParameter("pipeline", f"{where}: operator {key!r} is not allowed here")
            _constant(item, where)
    elif isinstance(value, list):
        for item in value:
            _constant(item, where)


def _exposing(resource: Resource) -> dict[str, Any]:
    """The ``$project`` every pipeline starts with: the fields the caller sees, named as the API names them.

    A field a served subclass's own resource hides is left out for every document (a pipeline cannot tell
    classes apart field by field).
    """
    hidden: set[str] = set()
    for name in resource.doc_cls._subclasses:
        hidden |= resource.hidden_for(name)
    classes = [resource.doc_cls, *(get_document(n) for n in resource.doc_cls._subclasses)]
    projection: dict[str, Any] = {"_id": 1}
    for name in sorted(resource.exposed - hidden - {resource.pk}):
        field = next((cls._fields[name] for cls in classes if name in cls._fields), None)
        if field is not None:
            projection[name] = 1 if field.db_field == name else "$" + field.db_field
    if resource.with_cls:
        projection["_cls"] = 1
    return projection


class Pipeline:
    """A client's pipeline checked stage by stage and made safe to run on one resource (see :meth:`build`).

    ``lookup(collection)`` gives the served resource of a ``$lookup``'s ``from``, as the caller may read it
    (``NotFound`` when none is served, ``Forbidden``/``Unauthorized`` when the policy refuses).
    """

    def __init__(self, resource: Resource, lookup: Callable[[str], Resource], cap: int) -> None:
        self.resource = resource
        self.lookup = lookup
        self.cap = cap

    def build(self, stages: Any) -> list[dict[str, Any]]:
        """The pipeline to run: the scope's ``$match``, the client's leading ``$match`` stages (through the
        resource's whitelist, on stored paths, where indexes serve them), the exposing ``$project``, the rest of
        the client's stages (on the API's field names), and a ``$limit`` one past the cap."""
        if not isinstance(stages, list) or not stages:
            raise InvalidParameter("pipeline", "must be a non-empty list of stages")
        if len(stages) > MAX_STAGES:
            raise InvalidParameter("pipeline", f"at most {MAX_STAGES} stages")
        leading: list[dict[str, Any]] = []
        rest: list[dict[str, Any]] = []
        for position, stage in enumerate(stages):
            where = f"stage {position}"
            if not isinstance(stage, dict) or len(stage) != 1:
                raise InvalidParameter("pipeline", f"{where}: a stage is an object with one operator")
            ((name, spec),) = stage.items()
            if name not in STAGES:
                raise InvalidParameter("pipeline", f"{where}: stage {name!r} is not allowed")
            if name == "$match" and not rest:
                leading.append({"$match": jsonquery.parse_query(self.resource, spec, "pipeline")})
            else:
                rest.append({name: getattr(self, "_" + name[1:])(spec, f"{where} ({name})")})
        base = self.resource.base_filter()
        scope = [{"$match": base}] if base else []
        return [*scope, *leading, {"$project": _exposing(self.resource)}, *rest, {"$limit": self.cap + 1}]

    def _match(self, spec: Any, where: str) -> Any:
        _query(spec, where)
        return spec

    def _project(self, spec: Any, where: str) -> Any:
        if not isinstance(spec, dict) or not spec:
            raise InvalidParameter("pipeline", f"{where}: takes an object of fields")
        for key, value in spec.items():
            _name(key, where)
            if not isinstance(value, bool) and value not in (0, 1):
                _expression(value, where)
        return spec

    def _sort(self, spec: Any, where: str) -> Any:
        if not isinstance(spec, dict) or not 0 < len(spec) <= MAX_SORT_KEYS:
            raise InvalidParameter("pipeline", f"{where}: takes 1 to {MAX_SORT_KEYS} fields")
        for key, direction in spec.items():
            _name(key, where)
            if isinstance(direction, bool) or direction not in (1, -1):
                raise InvalidParameter("pipeline", f"{where}: {key!r} takes 1 or -1")
        return spec

    def _limit(self, spec: Any, where: str) -> Any:
        if isinstance(spec, bool) or not isinstance(spec, int) or not 0 < spec <= MAX_INT:
            raise InvalidParameter("pipeline", f"{where}: takes a positive integer")
        return spec

    def _skip(self, spec: Any, where: str) -> Any:
        if isinstance(spec, bool) or not isinstance(spec, int) or not 0 <= spec <= MAX_INT:
            raise InvalidParameter("pipeline", f"{where}: takes a non-negative integer")
        return spec

    def _count(self, spec: Any, where: str) -> Any:
        return _name(spec, where, dotted=False)

    def _group(self, spec: Any, where: str) -> Any:
        if not isinstance(spec, dict) or "_id" not in spec:
            raise InvalidParameter("pipeline", f"{where}: takes an object with _id")
        _expression(spec["_id"], where)
        for key, accumulator in spec.items():
            if key == "_id":
                continue
            _name(key, where, dotted=False)
            if not isinstance(accumulator, dict) or len(accumulator) != 1:
                raise InvalidParameter("pipeline", f"{where}: {key!r} takes one accumulator")
            ((op, operand),) = accumulator.items()
            if op not in ACCUMULATORS:
                raise InvalidParameter("pipeline", f"{where}: accumulator {op!r} is not allowed")
            if op == "$count" and operand != {}:
                raise InvalidParameter("pipeline", f"{where}: $count takes {{}}")
            _expression(operand, where)
        return spec

    def _unwind(self, spec: Any, where: str) -> Any:
        if isinstance(spec, str):
            spec = {"path": spec}
        if not isinstance(spec, dict) or not isinstance(spec.get("path"), str) or not spec["path"].startswith("$"):
            raise InvalidParameter("pipeline", f'{where}: takes a path such as "$tags"')
        if set(spec) - {"path", "includeArrayIndex", "preserveNullAndEmptyArrays"}:
            raise InvalidParameter("pipeline", f"{where}: takes path, includeArrayIndex, preserveNullAndEmptyArrays")
        _reference(spec["path"], where)
        if "includeArrayIndex" in spec:
            _name(spec["includeArrayIndex"], where, dotted=False)
        if not isinstance(spec.get("preserveNullAndEmptyArrays", False), bool):
            raise InvalidParameter("pipeline", f"{where}: preserveNullAndEmptyArrays takes true or false")
        return spec

    def _lookup(self, spec: Any, where: str) -> Any:
        """A join on equal values into another served collection, which shows only what its caller may read."""
        keys = {"from", "localField", "foreignField", "as"}
        if not isinstance(spec, dict) or set(spec) != keys:
            raise InvalidParameter("pipeline", f"{where}: takes exactly from, localField, foreignField and as")
        if not isinstance(spec["from"], str):
            raise InvalidParameter("pipeline", f"{where}: from takes a collection name")
        target = self.lookup(spec["from"])
        if target.collection().database.name != self.resource.collection().database.name:
            raise InvalidParameter("pipeline", f"{where}: {spec['from']!r} is in another database")
        foreign = _name(spec["foreignField"], where)
        if foreign != "_id":
            try:
                path = resolve(target.doc_cls, foreign.replace(".", "__"))
            except UnknownField:
                path = None
            if path is None or path.attr_path[0] not in target.exposed:
                raise InvalidParameter("pipeline", f"{where}: {foreign!r} is not a field of {spec['from']!r}")
            foreign = path.db_path
        base = target.base_filter()
        inner = [*([{"$match": base}] if base else []), {"$project": _exposing(target)}]
        return {
            "from": target.collection_name,
            "localField": _name(spec["localField"], where),
            "foreignField": foreign,
            "pipeline": inner,
            "as": _name(spec["as"], where, dotted=False),
        }


# ---------------------------------------------------------------- the profile


class DataApi:
    """The Data API's actions under ``base_path`` (``/app/data-abcde/endpoint/data/v1``) over ``api``'s resources.

    ``aggregate``: the resource names ``aggregate`` may run on (``*``: all); none by default.
    """

    def __init__(self, api: Api, base_path: str, *, aggregate: Collection[str] = ()) -> None:
        self.api = api
        self.base_path = base_path.rstrip("/")
        self.aggregate = frozenset(aggregate)
        self._views = Views(api, api.cache_policy)  # the native API's expensive-read accounting
        self._actions: dict[str, Callable[[Call, Resource], dict[str, Any]]] = {
            "findOne": self._find_one,
            "find": self._find,
            "insertOne": self._insert_one,
            "insertMany": self._insert_many,
            "updateOne": lambda call, resource: self._update(call, resource, many=False),
            "updateMany": lambda call, resource: self._update(call, resource, many=True),
            "replaceOne": self._replace_one,
            "deleteOne": lambda call, resource: self._delete(call, resource, many=False),
            "deleteMany": lambda call, resource: self._delete(call, resource, many=True),
            "aggregate": self._aggregate,
        }

    def init_app(self, app: Flask) -> None:
        """Serve ``POST <base>/action/<action>``; every other method there is a 405 in the Data API's shape."""
        view = handled(self._view)
        view.__name__ = "data_api_action"
        app.add_url_rule(
            f"{self.base_path}/action/<action>", "restengine_data_api_action", view, methods=list(ALL_METHODS)
        )
        app.extensions[EXTENSION] = self

    @staticmethod
    def error_shape(problem: Problem) -> tuple[dict[str, Any], str]:
        """``problem`` as the Data API's error body: ``{"error", "error_code", "link"}``, as JSON.

        ``link`` pointed to the App Services log entry of the failed request; here it is the URI naming the
        kind of problem (the native API's problem ``type``), the closest stable reference RestEngine has.
        """
        return {"error": _message(problem), "error_code": _code(problem), "link": problem.type}, JSON

    # ------------------------------------------------------------ the view

    def _view(self, action: str) -> Response:
        environ = request.environ
        environ[ERROR_SHAPE] = self.error_shape  # a host app without the Mounts layer gets the shape too
        _api_key_as_bearer(environ)
        if request.method == "OPTIONS":
            response = Response(status=204)
            del response.headers["Content-Type"]
            response.headers["Allow"] = "OPTIONS, POST"
            return response
        if request.method != "POST":
            raise MethodNotAllowed(request.method, ("POST",))
        run = self._actions.get(action)
        if run is None:
            raise NotFound(f"No action named {action!r}: the Data API's are {', '.join(ACTIONS)}.")
        ejson_out = _response_format(request.headers.get("Accept")) == EJSON
        body = _body()
        call = Call(action, body, request.mimetype == EJSON, ejson_out)
        call.check_members()
        resource = self._target(call)
        if call.ejson_in:
            call.body = _from_ejson(body, _ejson_options(resource, JSONMode.RELAXED))
        environ[DEADLINE] = time.monotonic() + self.api.db_timeout
        result = run(call, resource)
        if ejson_out:
            data = json_util.dumps(result, json_options=_ejson_options(resource, JSONMode.CANONICAL))
            return Response(data, status=200, mimetype=EJSON)
        return Response(orjson.dumps(_plain_output(result)), status=200, mimetype=JSON)

    def _target(self, call: Call) -> Resource:
        """The served resource ``collection`` names in ``database``; 404 for any other (``dataSource``: any name).

        ``dataSource`` named a cluster linked to an App Services app; RestEngine serves one database of one
        deployment, so any non-empty name is accepted. ``collection`` is a served resource's collection name
        or its URL name (the URL name wins, and a collection shared by several resources is its base class's).
        """
        call.text("dataSource")
        database = call.text("database")
        collection = call.text("collection")
        resource = self._resource_named(collection)
        if resource is None or resource.collection().database.name != database:
            raise NotFound(f"No collection {collection!r} of database {database!r} is served here.")
        return resource

    def _resource_named(self, collection: str) -> Resource | None:
        resources = self.api.resources
        if collection in resources:
            return resources[collection]
        sharing = [r for r in resources.values() if r.collection_name == collection]
        sharing.sort(key=lambda r: ("." in r.doc_cls._class_name, r.name))
        return sharing[0] if sharing else None

    def _reach(self, resource: Resource, *acts: str) -> dict[str, Resource]:
        """``resource`` as the caller reaches it for each action, once the policy allows every one of them.

        The same decision as the native API's: a missing right is 401 for anonymous callers, else 403.
        """
        access = self.api.access
        if access is not None:
            principal = access.principal(request.environ)
            for act in acts:
                access.require(principal, resource.name, act)
        return {act: self.api.scoped(resource, request.environ, act) for act in acts}

    @staticmethod
    def _allow(resource: Resource, method: str, what: str) -> None:
        """Refuse what the resource's ``methods`` option does not serve natively (``POST``, ``PATCH``...)."""
        if method not in resource.methods:
            raise Forbidden(f"{resource.name} does not take {what}.")

    @contextlib.contextmanager
    def _budget(self, costly: bool) -> Iterator[None]:
        """An expensive read (a filter no index serves) under the native lists' rules: counted against the
        caller's expensive-query rate, one of its slots, and ``RESTENGINE_QUERY_TIME_MS`` of database time."""
        if not costly:
            yield
            return
        self._views._count_expensive()
        with self.api.slots.hold(self._views._caller()), query_time(self.api.query_time, request.environ[DEADLINE]):
            yield

    @contextlib.contextmanager
    def _reading(self, costly: bool) -> Iterator[None]:
        """A read action's database work: the request's deadline, as native reads have it."""
        with pymongo.timeout(self.api.db_timeout), self._budget(costly):
            yield

    def _phases(self, resource: Resource) -> Phases:
        return Phases(self.api.db_timeout, self.api.write_timeout, lambda: self.api.cache_policy.invalidate(resource))

    @staticmethod
    def _where(call: Call, resource: Resource) -> tuple[dict[str, Any], bool]:
        """The filter of the documents an action works on (the caller's scope included), and whether no index
        serves it (an expensive read, see :meth:`_budget`)."""
        filters = jsonquery.parse_query(resource, call.filter(), "filter")
        narrowed = conjunction(resource.base_filter(), filters)
        return narrowed, bool(filters) and not resource.index_serves(narrowed)

    def _documents(self, call: Call, resource: Resource, raws: list[dict[str, Any]], shown: _Shown) -> list[Any]:
        if call.ejson_out:
            return [_typed_document(resource, raw, shown) for raw in raws]
        return [_with_id(reads.decode(resource, raw, shown.fields), shown) for raw in raws]

    # ------------------------------------------------------------ reads

    def _find_one(self, call: Call, resource: Resource) -> dict[str, Any]:
        reader = self._reach(resource, "read")["read"]
        query, costly = self._where(call, reader)
        shown = _projection(reader, call.member("projection", dict, "an object"))
        with self._reading(costly):
            raw = reader.collection().find_one(query, reader.projection_for(shown.fields))
        return {"document": None if raw is None else self._documents(call, reader, [raw], shown)[0]}

    def _find(self, call: Call, resource: Resource) -> dict[str, Any]:
        """``find``: at most ``limit`` documents after ``skip``, in ``sort`` order (then ``_id``).

        ``limit`` is at most the resource's page size (``max_limit``); without it, more matching documents than
        that is a 400 rather than a silently cut answer. A ``skip`` past one page reads what it skips: it counts
        as an expensive read, as a filter no index serves does.
        """
        reader = self._reach(resource, "read")["read"]
        query, costly = self._where(call, reader)
        shown = _projection(reader, call.member("projection", dict, "an object"))
        spec = call.member("sort", (dict, list), "an object")
        sort = jsonquery.parse_sort(reader, spec, "sort") if spec else list(pagination.DEFAULT_SORT)
        limit, skip, most = call.count("limit"), call.count("skip"), reader.options.max_limit
        if limit > most:
            raise InvalidParameter("limit", f"at most {most} documents per request; page with skip")
        with self._reading(costly or skip > most):
            cursor = reader.collection().find(
                query, reader.projection_for(shown.fields), sort=sort, skip=skip, limit=limit or most + 1
            )
            raws = list(cursor)
        if not limit and len(raws) > most:
            raise InvalidParameter("limit", f"more than {most} documents match: ask for at most {most} with limit")
        return {"documents": self._documents(call, reader, raws, shown)}

    def _aggregate(self, call: Call, resource: Resource) -> dict[str, Any]:
        """``aggregate`` on a resource ``RESTENGINE_DATA_API_AGGREGATE`` lists; always an expensive read."""
        if "*" not in self.aggregate and resource.name not in self.aggregate:
            raise Forbidden(f"aggregate is not enabled on {resource.name} (RESTENGINE_DATA_API_AGGREGATE).")
        reader = self._reach(resource, "read")["read"]
        cap = reader.options.max_limit
        pipeline = Pipeline(reader, self._readable, cap).build(call.member("pipeline", list, "a list", required=True))
        with self._reading(True):
            documents = list(reader.collection().aggregate(pipeline))
        if len(documents) > cap:
            raise InvalidParameter("pipeline", f"more than {cap} results: end the pipeline with a $limit of {cap}")
        return {"documents": documents}

    def _readable(self, collection: str) -> Resource:
        """A ``$lookup``'s ``from``: a served resource the caller may read, as it reaches it."""
        target = self._resource_named(collection)
        if target is None:
            raise InvalidParameter("pipeline", f"$lookup from {collection!r}: no such collection is served")
        return self._reach(target, "read")["read"]

    # ------------------------------------------------------------ writes

    def _insert_one(self, call: Call, resource: Resource) -> dict[str, Any]:
        self._allow(resource, "POST", "inserts")
        creator = self._reach(resource, "create")["create"]
        body = _as_document(_plain(call.member("document", dict, "an object", required=True), "document"), "document")
        phases = self._phases(creator)
        doc = writes.prepare_create(creator, body, phases)
        writes.insert(creator, doc, phases)
        return {"insertedId": doc.to_mongo()["_id"]}

    def _insert_many(self, call: Call, resource: Resource) -> dict[str, Any]:
        """``insertMany``: all of ``documents`` or none, at most ``RESTENGINE_MAX_BATCH`` of them."""
        self._allow(resource, "POST", "inserts")
        creator = self._reach(resource, "create")["create"]
        bodies = call.member("documents", list, "a list of objects", required=True)
        if not bodies:
            raise InvalidParameter("documents", "must hold at least one document")
        if len(bodies) > self.api.max_batch:
            raise InvalidParameter("documents", f"at most {self.api.max_batch} per request; nothing was inserted")
        plain = [_as_document(_plain(body, "documents"), "documents") for body in bodies]
        phases = self._phases(creator)
        docs = writes.prepare_many(creator, plain, phases, max_items=self.api.max_batch)
        writes.insert_many(creator, docs, phases, undone=lambda: self.api.cache_policy.invalidate(creator))
        return {"insertedIds": [doc.to_mongo()["_id"] for doc in docs]}

    def _matching(self, resource: Resource, call: Call, phases: Phases, many: bool) -> list[dict[str, Any]]:
        """The stored documents a write action changes: the first match, or every one (at most the batch size:
        more is a 400 and nothing is written)."""
        query, costly = self._where(call, resource)
        most = self.api.max_batch if many else 1
        with phases.before(), self._budget(costly):
            raws = list(resource.collection().find(query, limit=most + 1 if many else 1))
        if len(raws) > most:
            raise InvalidParameter("filter", f"more than {most} documents match; at most {most} per request, "
                                   "nothing was changed")  # fmt: skip
        return raws

    def _update(self, call: Call, resource: Resource, *, many: bool) -> dict[str, Any]:
        """``updateOne``/``updateMany``: each matching document changed as a PATCH changes it.

        The operators are applied to the document as the API shows it, which is then validated and saved
        through the native write path (``clean()``, hooks, signals) with compare-and-set, so a concurrent
        change is re-read and the update applied again to it, never lost. With several documents, every one is
        validated before the first is saved. ``upsert``: see :meth:`_upsert`.
        """
        self._allow(resource, "PATCH", "updates")
        upsert = call.member("upsert", bool, "true or false") or False
        reached = self._reach(resource, "update", *(("create",) if upsert else ()))
        updater = reached["update"]
        changes = parse_update(updater, call.member("update", dict, "an object", required=True))
        raws = self._matching(updater, call, self._phases(updater), many)
        if not raws and upsert:
            body = apply_changes(equalities(call.filter()), changes)
            return {"matchedCount": 0, "modifiedCount": 0, "upsertedId": self._upsert(reached["create"], body)}
        matched, modified = self._change_all(call, updater, raws, lambda shown: apply_changes(shown, changes))
        return {"matchedCount": matched, "modifiedCount": modified}

    def _replace_one(self, call: Call, resource: Resource) -> dict[str, Any]:
        """``replaceOne``: the matching document replaced as a PUT replaces it (hidden and read-only fields kept).

        ``_id`` may be repeated, not changed. ``upsert`` inserts the replacement, with the filter's ``_id``.
        """
        self._allow(resource, "PUT", "replacements")
        upsert = call.member("upsert", bool, "true or false") or False
        reached = self._reach(resource, "update", *(("create",) if upsert else ()))
        replacement = _plain(call.member("replacement", dict, "an object", required=True), "replacement")
        if any(str(key).startswith("$") for key in replacement):
            raise InvalidParameter("replacement", "takes a document, not update operators (use updateOne)")
        raws = self._matching(reached["update"], call, self._phases(reached["update"]), False)
        if not raws and upsert:
            body = dict(replacement)
            found = equalities(call.filter())
            if "_id" not in body and "_id" in found:
                body["_id"] = found["_id"]
            return {"matchedCount": 0, "modifiedCount": 0, "upsertedId": self._upsert(reached["create"], body)}

        def replaced(shown: dict[str, Any]) -> dict[str, Any]:
            if "_id" in replacement and str(replacement["_id"]) != shown["id"]:
                raise InvalidParameter("replacement", "_id cannot be changed")
            kept = {key: shown[key] for key in ("id", "_cls") if key in shown}
            return {**{k: v for k, v in replacement.items() if k != "_id"}, **kept}

        matched, modified = self._change_all(call, reached["update"], raws, replaced)
        return {"matchedCount": matched, "modifiedCount": modified}

    def _upsert(self, creator: Resource, body: dict[str, Any]) -> Any:
        """Insert what an upsert that matched nothing makes, through the create path (as ``insertOne``)."""
        phases = self._phases(creator)
        doc = writes.prepare_create(creator, _as_document(body, "filter"), phases)
        writes.insert(creator, doc, phases)
        return doc.to_mongo()["_id"]

    def _change_all(
        self, call: Call, resource: Resource, raws: list[dict[str, Any]], change: Callable[[dict[str, Any]], Any]
    ) -> tuple[int, int]:
        """Apply ``change`` (representation -> new representation) to each of ``raws``: (matched, modified)."""
        query, _ = self._where(call, resource)
        planned = [self._planned(resource, raw, change) for raw in raws]
        docs = [doc for _, doc in planned if doc is not None]
        if len(docs) > 1:  # all or nothing as far as validation goes
            with self._phases(resource).before():
                writes.validate(docs, resource.serves)
        matched = modified = 0
        for raw, doc in planned:
            try:
                outcome = self._save(resource, query, raw, doc, change)
            except Exception as exc:
                raise _after(exc, modified, "documents were modified") from exc
            matched += outcome is not None
            modified += bool(outcome)
        return matched, modified

    @staticmethod
    def _planned(resource: Resource, raw: dict[str, Any], change: Callable[[dict[str, Any]], Any]) -> tuple[Any, Any]:
        """(raw, the changed Document to save, or ``None`` when the change leaves the document as it is)."""
        shown = reads.decode(resource, raw, resource.exposed)
        target = change(shown)
        return raw, (None if target == shown else writes.apply(resource, raw, target, shown))

    def _save(
        self, resource: Resource, query: dict[str, Any], raw: dict[str, Any], doc: Any, change: Callable[..., Any]
    ) -> bool | None:
        """Save one changed document if it is still as read: ``True`` modified, ``False`` unchanged, ``None`` no
        longer matching. A document changed meanwhile is read again and changed again (:data:`RETRIES` times)."""
        for _ in range(RETRIES):
            if doc is None:
                return False
            phases = self._phases(resource)
            try:
                writes.save_changes(resource, doc, raw, phases, conditional=True)
                return True
            except PreconditionFailed:
                with phases.before():
                    found = resource.collection().find_one(conjunction(query, {"_id": raw["_id"]}))
                if found is None:
                    return None
                raw, doc = self._planned(resource, found, change)
        raise Conflict("The document kept changing while it was being updated; retry.")

    def _delete(self, call: Call, resource: Resource, *, many: bool) -> dict[str, Any]:
        """``deleteOne``/``deleteMany``: each matching document deleted as a DELETE deletes it (delete rules,
        hooks, signals), only while it still matches; at most the batch size."""
        self._allow(resource, "DELETE", "deletes")
        deleter = self._reach(resource, "delete")["delete"]
        raws = self._matching(deleter, call, self._phases(deleter), many)
        query, _ = self._where(call, deleter)
        deleted = 0
        for raw in raws:
            try:
                deleted += self._delete_one(deleter, query, raw)
            except Exception as exc:
                raise _after(exc, deleted, "documents were deleted") from exc
        return {"deletedCount": deleted}

    def _delete_one(self, resource: Resource, query: dict[str, Any], raw: dict[str, Any]) -> int:
        for _ in range(RETRIES):
            phases = self._phases(resource)
            try:
                writes.delete(resource, raw, phases, conditional=True)
            except PreconditionFailed:
                with phases.before():
                    found = resource.collection().find_one(conjunction(query, {"_id": raw["_id"]}))
                if found is None:
                    return 0
                raw = found
                continue
            self.api.cache_policy.invalidate_deleted(resource, raw["_id"])
            return 1
        raise Conflict("The document kept changing while it was being deleted; retry.")

    # ------------------------------------------------------------ OpenAPI

    def openapi_paths(self) -> dict[str, Any]:
        """The OpenAPI 3.1 path items of the actions: their request bodies, responses and errors."""
        return {f"{self.base_path}/action/{action}": {"post": self._operation(action)} for action in ACTIONS}

    def _operation(self, action: str) -> dict[str, Any]:
        body = _request_schema(action, self._collections(), self.api.max_batch)
        result = _RESULTS[action]
        error = {
            "description": "The Data API's error body.",
            "content": {JSON: {"schema": _ERROR_SCHEMA}},
        }
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

    def _collections(self) -> list[str]:
        names = {r.name for r in self.api.resources.values()} | {r.collection_name for r in self.api.resources.values()}
        return sorted(names)


def _api_key_as_bearer(environ: dict[str, Any]) -> None:
    """The Data API's ``apiKey`` header as ``Authorization: Bearer`` (what the Mounts layer does, for a host app
    without it), unless the caller was already established or sent an ``Authorization`` of its own."""
    key = environ.get("HTTP_APIKEY")
    if key and not environ.get("HTTP_AUTHORIZATION") and PRINCIPAL not in environ:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {key.strip()}"


def _after(exc: Exception, done: int, what: str) -> Exception:
    """The error that stopped a many-document write, saying how far it got (the Data API's writes are not
    transactions either)."""
    problem = to_problem(exc)
    if problem is None or not done:
        return exc
    detail = f"{problem.detail or problem.title} ({done} {what} before this one; the rest were not.)"
    return Problem(
        detail, status=problem.status, type=problem.type, title=problem.title, errors=problem.errors,
        headers=problem.headers,
    )  # fmt: skip


# ---------------------------------------------------------------- OpenAPI schemas

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
    "422": "A document is not valid for its resource (UnprocessableEntity).",
}
_COUNT: dict[str, Any] = {"type": "integer", "minimum": 0}
_UPDATED: dict[str, Any] = {
    "type": "object",
    "required": ["matchedCount", "modifiedCount"],
    "properties": {"matchedCount": _COUNT, "modifiedCount": _COUNT, "upsertedId": {}},
}
_RESULTS: dict[str, dict[str, Any]] = {
    "findOne": {"type": "object", "required": ["document"], "properties": {"document": {"type": ["object", "null"]}}},
    "find": {"type": "object", "required": ["documents"], "properties": {"documents": {"type": "array", "items": _ANY_OBJECT}}},
    "insertOne": {"type": "object", "required": ["insertedId"], "properties": {"insertedId": {}}},
    "insertMany": {"type": "object", "required": ["insertedIds"], "properties": {"insertedIds": {"type": "array"}}},
    "updateOne": _UPDATED,
    "updateMany": _UPDATED,
    "replaceOne": _UPDATED,
    "deleteOne": {"type": "object", "required": ["deletedCount"], "properties": {"deletedCount": _COUNT}},
    "deleteMany": {"type": "object", "required": ["deletedCount"], "properties": {"deletedCount": _COUNT}},
    "aggregate": {"type": "object", "required": ["documents"], "properties": {"documents": {"type": "array", "items": _ANY_OBJECT}}},
}  # fmt: skip


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
