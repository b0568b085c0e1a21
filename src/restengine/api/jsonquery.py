"""MongoDB-style JSON queries (Eve's ``?where=``, the Data API's ``filter``) checked against a resource's whitelist.

Other systems' clients send a query as a MongoDB filter document. It is never
passed on: it is read clause by clause into the same conditions the query-string
filters build (:mod:`restengine.api.filters`), so the same fields and operators
are allowed, hidden fields do not exist, every value is coerced to the type the
field stores, and string values only ever match literally. What this module does
not translate is refused: ``$where``, ``$expr``, ``$function``, ``$regex``,
``$text`` and every operator outside :data:`OPERATORS`.

Sorts (``{"title": -1}`` or ``[["title", -1]]``) and projections
(``{"title": 1}``, ``{"secret": 0}``) are read into the native forms too.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from bson import Decimal128, ObjectId

from restengine.api import pagination, reads
from restengine.api.filters import MAX_FILTERS, MAX_LIST_ITEMS, _assemble, coerce, filter_parameter
from restengine.api.operators import BY_NAME
from restengine.api.resource import Resource
from restengine.errors import InvalidParameter

OPERATORS = {
    "$eq": "eq",
    "$ne": "ne",
    "$gt": "gt",
    "$gte": "gte",
    "$lt": "lt",
    "$lte": "lte",
    "$in": "in",
    "$nin": "nin",
    "$all": "all",
    "$exists": "exists",
    "$size": "size",
}
"""MongoDB query operators a JSON query may use, and the filter operator each one is."""

LOGICAL = ("$and", "$or", "$nor")
MAX_DEPTH = 4  # levels of $and / $or / $nor


def _text(value: Any, param: str) -> str:
    """A JSON (or Extended JSON) value as the query-string text :func:`coerce` parses for a field."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float, Decimal, Decimal128, ObjectId, uuid.UUID)):
        return str(value)
    if isinstance(value, datetime.datetime):
        stamp = value if value.tzinfo is None else value.astimezone(datetime.UTC).replace(tzinfo=None)
        return stamp.isoformat() + "Z"
    raise InvalidParameter(param, f"a value of type {type(value).__name__} cannot be compared here")


class _Reader:
    def __init__(self, resource: Resource, param: str) -> None:
        self.resource = resource
        self.param = param
        self.conditions = 0

    def query(self, query: Any, depth: int) -> dict[str, Any]:
        if not isinstance(query, Mapping):
            raise InvalidParameter(self.param, "a query must be a JSON object")
        if depth > MAX_DEPTH:
            raise InvalidParameter(self.param, f"at most {MAX_DEPTH} levels of $and / $or / $nor")
        conditions: dict[str, list[tuple[str, Any]]] = {}
        logical: list[dict[str, Any]] = []
        for key, value in query.items():
            if not isinstance(key, str) or not key:
                raise InvalidParameter(self.param, "empty field name")
            if key in LOGICAL:
                if not isinstance(value, list) or not value:
                    raise InvalidParameter(self.param, f"{key} takes a non-empty list of queries")
                logical.append({key: [self.query(part, depth + 1) for part in value]})
            elif key.startswith("$"):
                raise InvalidParameter(self.param, f"operator {key!r} is not allowed")
            else:
                self.field(key, value, conditions)
        built = _assemble(conditions)
        if not logical:
            return built
        parts = ([built] if built else []) + logical
        return parts[0] if len(parts) == 1 else {"$and": parts}

    def field(self, key: str, value: Any, conditions: dict[str, list[tuple[str, Any]]]) -> None:
        path = "id" if key == "_id" else key.replace(".", "__")
        if "__" in key or path.startswith("__") or path.endswith("__"):
            raise InvalidParameter(self.param, f"unknown field {key!r}")
        operators = (
            list(value.items())
            if isinstance(value, Mapping) and value and all(str(k).startswith("$") for k in value)
            else [("$eq", value)]
        )
        for mongo, operand in operators:
            op = OPERATORS.get(mongo)
            if op is None:
                raise InvalidParameter(self.param, f"operator {mongo!r} is not allowed (on {key!r})")
            self.conditions += 1
            if self.conditions > MAX_FILTERS:
                raise InvalidParameter(self.param, f"at most {MAX_FILTERS} conditions are allowed")
            name = path if op == "eq" else f"{path}__{op}"
            try:
                fp, _ = filter_parameter(
                    self.resource.doc_cls, name, filterable=self.resource.filterable, hidden=self.resource.unexposed
                )
            except InvalidParameter as exc:
                raise InvalidParameter(self.param, f"{key!r}: {exc.errors[exc.param][0]}") from None
            conditions.setdefault(fp.db_path, []).append((op, self.condition(op, fp.field, operand, key)))

    def condition(self, op: str, field: Any, operand: Any, key: str) -> Any:
        operator = BY_NAME[op]
        where = f"{self.param}.{key}"
        if operator.takes_list:
            if not isinstance(operand, list) or len(operand) > MAX_LIST_ITEMS:
                raise InvalidParameter(self.param, f"{key!r}: {op} takes a list of at most {MAX_LIST_ITEMS} values")
            return {operator.mongo: [None if v is None else coerce(field, _text(v, where), where) for v in operand]}
        if op == "exists":
            if not isinstance(operand, bool):
                raise InvalidParameter(self.param, f"{key!r}: $exists takes true or false")
            return {"$exists": operand}
        if op == "size":
            if isinstance(operand, bool) or not isinstance(operand, int) or not 0 <= operand < 2**31:
                raise InvalidParameter(self.param, f"{key!r}: $size takes a non-negative integer")
            return {"$size": operand}
        value = None if operand is None else coerce(field, _text(operand, where), where)
        return value if operator.mongo is None else {operator.mongo: value}


def parse_query(resource: Resource, query: Any, param: str) -> dict[str, Any]:
    """The raw MongoDB filter for a JSON ``query``, through ``resource``'s whitelist (see the module).

    Raises :class:`InvalidParameter` naming ``param`` for anything not allowed.
    """
    return _Reader(resource, param).query(query, 1)


def parse_sort(resource: Resource, spec: Any, param: str) -> list[pagination.SortKey]:
    """A sort given as ``{"field": 1|-1, ...}`` or ``[["field", 1|-1], ...]`` (dotted paths): the native sort."""
    pairs = list(spec.items()) if isinstance(spec, Mapping) else spec
    if not isinstance(pairs, list) or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in pairs):
        raise InvalidParameter(param, 'a sort is {"field": 1 or -1, ...}')
    keys = []
    for name, direction in pairs:
        if not isinstance(name, str) or direction not in (1, -1) or isinstance(direction, bool):
            raise InvalidParameter(param, 'a sort is {"field": 1 or -1, ...}')
        keys.append(("-" if direction == -1 else "") + ("id" if name == "_id" else name.replace(".", "__")))
    if not keys:
        return list(pagination.DEFAULT_SORT)
    try:
        return pagination.parse_sort(
            resource.doc_cls, ",".join(keys), sortable=resource.options.sortable, hidden=resource.unexposed
        )
    except InvalidParameter as exc:
        raise InvalidParameter(param, exc.errors["sort"][0]) from None


def parse_projection(resource: Resource, spec: Any, param: str) -> frozenset[str]:
    """The fields a projection returns: ``{"a": 1, "b": 1}`` (these) or ``{"c": 0}`` (all but these); the id always.

    Names are top-level attribute names; ``_id`` may be named. Mixing inclusion and exclusion is refused.
    """
    if not isinstance(spec, Mapping):
        raise InvalidParameter(param, 'a projection is {"field": 1, ...} or {"field": 0, ...}')
    if not spec:
        return resource.exposed
    names = {("id" if k == "_id" else k): v for k, v in spec.items()}
    flags = {bool(v) for k, v in names.items() if k != "id"}
    if not all(isinstance(v, (bool, int)) for v in names.values()) or len(flags) > 1:
        raise InvalidParameter(param, "a projection either includes fields (1) or excludes them (0), not both")
    unknown = sorted(k for k in names if k not in resource.exposed and k != "id")
    if unknown:
        raise InvalidParameter(param, f"unknown fields: {', '.join(unknown)}")
    chosen = frozenset(k for k in names if k != "id")
    if flags == {False}:
        return resource.exposed - chosen
    if not chosen:
        return frozenset({resource.pk})
    return reads.parse_fields(resource, ",".join(sorted(chosen)))
