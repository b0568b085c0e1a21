"""Query-string filters (``?price__gte=5&shipping__city=Oslo``) turned into a raw MongoDB filter.

Every value is coerced to the type MongoDB stores for its field, and the filter
holds only operators this module writes: clients cannot send ``$where``,
``$expr`` or any raw query. String operators become ``{"$regex": <escaped
text>, "$options": "i"}`` with a *string* pattern (compiled patterns miss on
indexed fields in SecantusDB), so user text always matches literally.
"""

from __future__ import annotations

import contextlib
import decimal
import math
import re
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from bson import DBRef, ObjectId
from bson.errors import InvalidId
from mongoengine import fields as mf
from mongoengine.base import BaseField

from restengine.api import model
from restengine.api.codec import parse_datetime
from restengine.api.options import ALL_OPERATORS, COMPARISON, LIST, STRING
from restengine.errors import InvalidParameter

MAX_VALUE_LENGTH = 200
MAX_FILTERS = 30
MAX_LIST_ITEMS = 100
UNFILTERABLE = "field cannot be filtered by value"

OPERATOR_SUFFIXES = ALL_OPERATORS - {"eq"}
TEXT_OPERATORS = STRING - COMPARISON  # contains, icontains, startswith, ..., iexact

_INT = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INT64 = 2**63
_ANCHORS = {"contains": ("", ""), "startswith": ("^", ""), "endswith": ("", "$"), "exact": ("^", "$")}
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def _int(text: str, *, low: int = -_INT64, high: int = _INT64 - 1) -> int:
    if not _INT.fullmatch(text):
        raise ValueError("expected an integer")
    if not low <= int(text) <= high:
        raise ValueError(f"expected an integer between {low} and {high}")
    return int(text)


def _number(field: BaseField, text: str) -> Any:
    """FloatField: a float; DecimalField/Decimal128Field: whatever the field stores for it."""
    if not _NUMBER.fullmatch(text):
        raise ValueError("expected a decimal number")
    try:
        value = float(text) if isinstance(field, mf.FloatField) else field.to_mongo(decimal.Decimal(text))
    except (decimal.DecimalException, OverflowError):
        value = math.inf
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def _parser(parse: Callable[[str], Any], message: str) -> Callable[[str], Any]:
    """``parse``, any failure reported as ``ValueError(message)``."""

    def parsed(text: str) -> Any:
        try:
            return parse(text)
        except (ValueError, LookupError, ArithmeticError, InvalidId):
            raise ValueError(message) from None

    return parsed


_datetime = _parser(parse_datetime, "expected an ISO 8601 date or date-time")  # naive UTC, as MongoEngine stores
_object_id = _parser(ObjectId, "expected a 24-character hexadecimal ObjectId")
_uuid = _parser(uuid.UUID, "expected a UUID")
_bool = _parser(lambda text: _BOOLEANS[text.lower()], "expected true, false, 1 or 0")


def _text(field: BaseField, text: str) -> str:
    return text


def _reference(field: BaseField, text: str) -> Any:
    target = field.document_type
    if target._meta.get("abstract"):  # stored as DBRef(..., cls=...) whose collection varies
        raise ValueError(UNFILTERABLE)
    value = _coerce(model.pk_field(target), text)
    return DBRef(target._get_collection_name(), value) if field.dbref else value


def _enum(field: BaseField, text: str) -> Any:
    members = {str(member.value): member for member in field._enum_cls}
    if text not in members:
        raise ValueError("expected one of: " + ", ".join(members))
    return field.to_mongo(members[text])


# First match wins: ComplexDateTimeField is a StringField (stored as a sortable string).
# The last item names the kind of value for the OpenAPI document (see value_kind).
_COERCERS: tuple[tuple[type | tuple[type, ...], Callable[[Any, str], Any], str], ...] = (
    ((mf.DateTimeField, mf.ComplexDateTimeField), lambda field, text: field.to_mongo(_datetime(text)), "datetime"),
    (mf.StringField, _text, "string"),
    ((mf.IntField, mf.SequenceField), lambda field, text: _int(text), "integer"),
    ((mf.FloatField, mf.DecimalField, mf.Decimal128Field), _number, "number"),
    (mf.BooleanField, lambda field, text: _bool(text), "boolean"),
    (mf.ObjectIdField, lambda field, text: _object_id(text), "objectid"),
    (mf.UUIDField, lambda field, text: _uuid(text) if field._binary else str(_uuid(text)), "uuid"),
    ((mf.ReferenceField, mf.LazyReferenceField), _reference, "reference"),
    (mf.EnumField, _enum, "enum"),
)


def _coercer(field: BaseField) -> tuple[Callable[[Any, str], Any], str] | None:
    return next(((convert, kind) for kinds, convert, kind in _COERCERS if isinstance(field, kinds)), None)


def _converter(field: BaseField) -> Callable[[Any, str], Any] | None:
    found = _coercer(field)
    return None if found is None else found[0]


def _coerce(field: BaseField, text: str) -> Any:
    inner = model.item_field(field)
    convert = _converter(inner)
    if convert is None:
        raise ValueError(UNFILTERABLE)
    return convert(inner, text)


def coerce(field: BaseField, text: str, param: str) -> Any:
    """The value ``text`` means for ``field``, as MongoDB stores it (element field for lists).

    Raises :class:`InvalidParameter` naming ``param`` when ``text`` is longer than
    ``MAX_VALUE_LENGTH``, holds a NUL, does not parse for the field's type, or the
    field (dict, binary, embedded document, generic reference, file, geo...) has
    no filterable value.
    """
    if len(text) > MAX_VALUE_LENGTH:
        raise InvalidParameter(param, f"value longer than {MAX_VALUE_LENGTH} characters")
    if "\x00" in text:
        raise InvalidParameter(param, "value contains a NUL character")
    try:
        return _coerce(field, text)
    except ValueError as exc:
        raise InvalidParameter(param, str(exc)) from None


def allowed_operators(field: BaseField) -> frozenset[str]:
    """The operators that fit ``field``'s type; only ``exists`` (and ``size``) without a filterable value."""
    convert = _converter(model.item_field(field))
    if isinstance(field, mf.ListField):
        listed = LIST if convert else frozenset({"exists", "size"})
        return listed | TEXT_OPERATORS if convert is _text else listed
    if convert is _text:
        return STRING
    return COMPARISON if convert else frozenset({"exists"})


def _condition(op: str, field: BaseField, text: str, param: str) -> Any:
    """The bare value for ``eq``, else an operator dict built from ``text``."""
    if op in ("in", "nin", "all"):
        items = text.split(",")
        if len(items) > MAX_LIST_ITEMS:
            raise InvalidParameter(param, f"at most {MAX_LIST_ITEMS} comma-separated values are allowed")
        if not all(items):
            raise InvalidParameter(param, "empty value in the comma-separated list")
        return {f"${op}": [coerce(field, item, param) for item in items]}
    try:
        if op == "exists":
            return {"$exists": _bool(text)}
        if op == "size":
            return {"$size": _int(text, low=0, high=2**31 - 1)}
    except ValueError as exc:
        raise InvalidParameter(param, str(exc)) from None
    value = coerce(field, text, param)
    if op in TEXT_OPERATORS:
        start, end = _ANCHORS[op.removeprefix("i")]
        regex = {"$regex": start + re.escape(value) + end}
        return regex | {"$options": "i"} if op.startswith("i") else regex
    return value if op == "eq" else {f"${op}": value}


def _resolve(doc_cls: type[Any], path: str) -> model.FieldPath | None:
    with contextlib.suppress(model.UnknownField):
        return model.resolve(doc_cls, path)
    return None


def _split(doc_cls: type[Any], name: str) -> tuple[model.FieldPath, str]:
    """Resolve ``path`` or ``path__op``; a suffix naming a field (``dims__size``) is an operator only if it fits."""
    head, sep, last = name.rpartition("__")
    whole = _resolve(doc_cls, name)
    base = _resolve(doc_cls, head) if sep else None
    if base is not None and last in OPERATOR_SUFFIXES and (whole is None or last in allowed_operators(base.field)):
        return base, last
    if whole is not None:
        return whole, "eq"
    if base is not None and last and model.embedded_type(base.field) is None:
        raise InvalidParameter(name, f"unknown operator {last!r}")
    raise InvalidParameter(name, "unknown field")


def _canonical(doc_cls: type[Any], path: str) -> tuple[str, ...]:
    """The steps of a client path; ``id`` as first step names the primary key, whatever its attribute name."""
    parts = tuple(path.split("__"))
    return (model.pk_name(doc_cls), *parts[1:]) if parts[0] == "id" else parts


def _allowed_here(
    doc_cls: type[Any], path: model.FieldPath, filterable: Mapping[str, Collection[str]] | None
) -> frozenset[str] | None:
    """The operators allowed on ``path``, or None when ``filterable`` has no key covering it."""
    fits = allowed_operators(path.field)
    if filterable is None:
        return fits
    attrs, best = _canonical(doc_cls, path.name), None
    for key in filterable:  # the most specific key covering the path decides
        parts = _canonical(doc_cls, key)
        if attrs[: len(parts)] == parts and (best is None or key.count("__") > best.count("__")):
            best = key
    return None if best is None else fits & frozenset(filterable[best])


def _assemble(conditions: Mapping[str, list[tuple[str, Any]]]) -> dict[str, Any]:
    """One entry per db path; clashing conditions on a path are combined with ``$and``."""
    query: dict[str, Any] = {}
    combined: list[dict[str, Any]] = []
    for db_path, items in conditions.items():
        clauses: list[dict[str, Any]] = [{db_path: value} for op, value in items if op == "eq"]
        groups: list[dict[str, Any]] = []
        for value in (value for op, value in items if op != "eq"):
            group = next((group for group in groups if not group.keys() & value.keys()), None)
            if group is None:
                groups.append(group := {})
            group.update(value)
        clauses += [{db_path: group} for group in groups]
        if len(clauses) == 1:
            query.update(clauses[0])
        else:
            combined += clauses
    if combined:
        query["$and"] = combined
    return query


def parse_filters(
    doc_cls: type[Any],
    args: Iterable[tuple[str, str]],
    *,
    filterable: Mapping[str, frozenset[str]] | None,
    hidden: Collection[str] = (),
    reserved: Collection[str] = (),
) -> dict[str, Any]:
    """Build a raw MongoDB filter (keyed by db_field paths) from query-string pairs.

    Names in ``reserved`` are skipped; every other name is ``path`` (equality) or
    ``path__op``. ``filterable`` maps client paths to operators (a key covers the
    paths below it, the most specific key decides; ``None`` allows every path).
    Operators are always also limited by :func:`allowed_operators`, so the list form
    of ``ResourceOptions.filterable`` becomes ``{path: ALL_OPERATORS}``. Hidden paths
    are refused as unknown. ``in``/``nin``/``all`` split on commas (no escaping).

    Raises :class:`InvalidParameter` naming the offending parameter (``"filters"``
    for more than ``MAX_FILTERS`` of them).
    """
    params = [(name, text) for name, text in args if name not in reserved]
    if len(params) > MAX_FILTERS:
        raise InvalidParameter("filters", f"at most {MAX_FILTERS} filter parameters are allowed")
    seen: set[str] = set()
    conditions: dict[str, list[tuple[str, Any]]] = {}
    for name, text in params:
        if name in seen:
            raise InvalidParameter(name, "given more than once")
        seen.add(name)
        path, op = filter_parameter(doc_cls, name, filterable=filterable, hidden=hidden)
        conditions.setdefault(path.db_path, []).append((op, _condition(op, path.field, text, name)))
    return _assemble(conditions)


def filter_parameter(
    doc_cls: type[Any],
    name: str,
    *,
    filterable: Mapping[str, Collection[str]] | None,
    hidden: Collection[str] = (),
) -> tuple[model.FieldPath, str]:
    """The field path and operator a filter parameter name (``path`` or ``path__op``) stands for.

    Raises :class:`InvalidParameter` when the name is unknown, hidden, or names a
    field or an operator ``filterable`` does not allow. The value is not looked at.
    """
    steps = _canonical(doc_cls, name)
    if any(steps[: len(hidden_path)] == hidden_path for hidden_path in (_canonical(doc_cls, p) for p in hidden)):
        raise InvalidParameter(name, "unknown field")  # hidden fields do not exist for clients
    path, op = _split(doc_cls, name)
    allowed = _allowed_here(doc_cls, path, filterable)
    if allowed is None:
        raise InvalidParameter(name, "filtering on this field is not allowed")
    if op not in allowed:
        raise InvalidParameter(name, f"operator {op!r} is not allowed on this field")
    return path, op


def value_kind(field: BaseField) -> str | None:
    """What a filter value on ``field`` (its element field for lists) is parsed as; ``None``: no value fits.

    One of ``datetime``, ``string``, ``integer``, ``number``, ``boolean``,
    ``objectid``, ``uuid``, ``reference`` (the referenced primary key's), ``enum``.
    """
    inner = model.item_field(field)
    found = _coercer(inner)
    if found is None or (found[1] == "reference" and inner.document_type._meta.get("abstract")):
        return None
    return found[1]
