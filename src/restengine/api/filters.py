"""Query-string filters (``?price__gte=5&shipping__city=Oslo``) turned into a raw MongoDB filter.

Every value is coerced to the type MongoDB stores for its field, and the filter
holds only operators this module writes: clients cannot send ``$where``,
``$expr`` or any raw query. String operators become ``{"$regex": <escaped
text>, "$options": "i"}`` with a *string* pattern (compiled patterns miss on
indexed fields in SecantusDB), so user text always matches literally.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from mongoengine.base import BaseField

from restengine.api.fields import UNFILTERABLE, field_type, parse_bool, parse_int, parse_query
from restengine.api.model import FieldPath, UnknownField, embedded_type, item_field, pk_name, resolve
from restengine.api.operators import (
    BY_NAME,
    EXPENSIVE,
    MAX_LIST_ITEMS,
    MAX_VALUE_LENGTH,
    OPERATOR_SUFFIXES,
    TEXT_OPERATORS,
)
from restengine.errors import InvalidParameter

__all__ = [
    "MAX_FILTERS",
    "MAX_LIST_ITEMS",
    "MAX_VALUE_LENGTH",
    "OPERATOR_SUFFIXES",
    "TEXT_OPERATORS",
    "UNFILTERABLE",
    "allowed_operators",
    "coerce",
    "covering_key",
    "filter_parameter",
    "parse_filters",
    "value_kind",
]

MAX_FILTERS = 30


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
        return parse_query(field, text)
    except ValueError as exc:
        raise InvalidParameter(param, str(exc)) from None


def allowed_operators(field: BaseField) -> frozenset[str]:
    """The operators that fit ``field``'s type; only ``exists`` (and ``size``) without a filterable value."""
    return field_type(field).operators(field)


def _condition(op: str, field: BaseField, text: str, param: str) -> Any:
    """The bare value for ``eq``, else an operator dict built from ``text``."""
    operator = BY_NAME[op]
    if operator.takes_list:
        items = text.split(",")
        if len(items) > MAX_LIST_ITEMS:
            raise InvalidParameter(param, f"at most {MAX_LIST_ITEMS} comma-separated values are allowed")
        if not all(items):
            raise InvalidParameter(param, "empty value in the comma-separated list")
        return {operator.mongo: [coerce(field, item, param) for item in items]}
    try:
        if op == "exists":
            return {"$exists": parse_bool(text)}
        if op == "size":
            return {"$size": parse_int(text, low=0, high=2**31 - 1)}
    except ValueError as exc:
        raise InvalidParameter(param, str(exc)) from None
    value = coerce(field, text, param)
    if operator.text:
        start, end = operator.anchors
        regex = {"$regex": start + re.escape(value) + end}
        return regex | {"$options": "i"} if operator.ignore_case else regex
    return value if operator.mongo is None else {operator.mongo: value}


def _resolve(doc_cls: type[Any], path: str) -> FieldPath | None:
    with contextlib.suppress(UnknownField):
        return resolve(doc_cls, path)
    return None


def _split(doc_cls: type[Any], name: str) -> tuple[FieldPath, str]:
    """Resolve ``path`` or ``path__op``; a suffix naming a field (``dims__size``) is an operator only if it fits."""
    head, sep, last = name.rpartition("__")
    whole = _resolve(doc_cls, name)
    base = _resolve(doc_cls, head) if sep else None
    if base is not None and last in OPERATOR_SUFFIXES and (whole is None or last in allowed_operators(base.field)):
        return base, last
    if whole is not None:
        return whole, "eq"
    if base is not None and last and embedded_type(base.field) is None:
        raise InvalidParameter(name, f"unknown operator {last!r}")
    raise InvalidParameter(name, "unknown field")


def _canonical(doc_cls: type[Any], path: str) -> tuple[str, ...]:
    """The steps of a client path; ``id`` as first step names the primary key, whatever its attribute name."""
    parts = tuple(path.split("__"))
    return (pk_name(doc_cls), *parts[1:]) if parts[0] == "id" else parts


def covering_key(doc_cls: type[Any], path: str, keys: Iterable[str]) -> str | None:
    """The most specific of ``keys`` (client paths) covering the client path ``path``: itself or a path above it."""
    attrs, best = _canonical(doc_cls, path), None
    for key in keys:
        parts = _canonical(doc_cls, key)
        if attrs[: len(parts)] == parts and (best is None or key.count("__") > best.count("__")):
            best = key
    return best


def _allowed_here(
    doc_cls: type[Any], path: FieldPath, filterable: Mapping[str, Collection[str]] | None
) -> frozenset[str] | None:
    """The operators allowed on ``path``, or None when ``filterable`` has no key covering it."""
    fits = allowed_operators(path.field)
    if filterable is None:
        return fits
    best = covering_key(doc_cls, path.name, filterable)
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
    are refused as unknown. ``in``/``nin``/``all`` split on commas (no escaping), and
    may be repeated: ``tags__in=a&tags__in=b,c`` is ``tags__in=a,b,c``. Any other
    filter given more than once is refused (never one of its values dropped).

    Raises :class:`InvalidParameter` naming the offending parameter (``"filters"``
    for more than ``MAX_FILTERS`` of them).
    """
    params: dict[str, list[str]] = {}
    for name, text in args:
        if name not in reserved:
            params.setdefault(name, []).append(text)
    if len(params) > MAX_FILTERS:
        raise InvalidParameter("filters", f"at most {MAX_FILTERS} filter parameters are allowed")
    conditions: dict[str, list[tuple[str, Any]]] = {}
    for name, texts in params.items():
        path, op = filter_parameter(doc_cls, name, filterable=filterable, hidden=hidden)
        if len(texts) > 1 and not BY_NAME[op].takes_list:
            raise InvalidParameter(name, "given more than once: it takes one value")
        text = ",".join(texts)
        conditions.setdefault(path.db_path, []).append((op, _condition(op, path.field, text, name)))
    return _assemble(conditions)


def filter_parameter(
    doc_cls: type[Any],
    name: str,
    *,
    filterable: Mapping[str, Collection[str]] | None,
    hidden: Collection[str] = (),
) -> tuple[FieldPath, str]:
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
        if op in EXPENSIVE and op in allowed_operators(path.field):
            raise InvalidParameter(
                name,
                f"operator {op!r} is not allowed on this field: no index can serve it, so it reads every "
                "document (a resource's options may allow it: expensive=...)",
            )
        raise InvalidParameter(name, f"operator {op!r} is not allowed on this field")
    return path, op


def value_kind(field: BaseField) -> str | None:
    """What a filter value on ``field`` (its element field for lists) is parsed as; ``None``: no value fits.

    One of ``datetime``, ``string``, ``integer``, ``number``, ``boolean``,
    ``objectid``, ``uuid``, ``reference`` (the referenced primary key's), ``enum``.
    """
    inner = item_field(field)
    return field_type(inner).value_kind(inner)
