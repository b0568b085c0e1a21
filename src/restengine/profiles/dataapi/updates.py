"""Update documents (``$set``, ``$unset``, ``$inc``, ``$push``, ``$pull``, ``$addToSet``) applied to the
JSON representation of a document, which the native write path then validates and saves as it saves a PATCH.

The Data API's ``updateOne``/``updateMany`` took "a MongoDB update expression" and ``upsert`` ("insert a new
document based on the filter and the specified update operation": OpenAPI reference, ``operation-updateone``).
Only the six operators above are accepted, on fields the caller may write; what MongoDB would do to a missing
field (``$inc`` from 0, ``$push`` to a new list) is done here too.
"""

from __future__ import annotations

import copy
import dataclasses
import decimal
import itertools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from mongoengine import fields as mf

from restengine.api.model import UnknownField, resolve
from restengine.errors import InvalidParameter
from restengine.profiles.dataapi.bodies import plain

if TYPE_CHECKING:
    from restengine.api.resource import Resource

UPDATE_OPERATORS = ("$set", "$unset", "$inc", "$push", "$pull", "$addToSet")


@dataclasses.dataclass(frozen=True)
class Change:
    """One ``{"$op": {"path": value}}`` of an update document, checked."""

    op: str
    path: tuple[str, ...]
    value: Any
    decimal: bool  # the field stores a decimal (shown as a string): ``$inc`` adds exactly


def parse_update(resource: Resource, spec: Mapping[str, Any]) -> list[Change]:
    """The changes an ``update`` document asks for: only :data:`UPDATE_OPERATORS`, on fields the caller may write.

    A path names a writable top-level field, then keys of embedded objects or list positions; ``_id``, ``$``
    positional paths and ``__`` are refused. Raises :class:`InvalidParameter` ("update").
    """
    if not spec:
        raise InvalidParameter("update", f"needs at least one of {', '.join(UPDATE_OPERATORS)}")
    changes: list[Change] = []
    for op, fields in spec.items():
        if op not in UPDATE_OPERATORS:
            hint = "" if str(op).startswith("$") else " (to replace a whole document, use replaceOne)"
            raise InvalidParameter("update", f"{op!r} is not allowed: only {', '.join(UPDATE_OPERATORS)}{hint}")
        if not isinstance(fields, dict) or not fields:
            raise InvalidParameter("update", f"{op} takes an object of field paths")
        for name, value in fields.items():
            path = _update_path(resource, name)
            operand = plain(value, "update")
            _check_operand(op, name, operand)
            changes.append(Change(op, path, operand, _is_decimal(resource, path)))
    paths = sorted(change.path for change in changes)
    for first, second in itertools.pairwise(paths):
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
    if op == "$inc" and not (_number(value) or (isinstance(value, str) and _decimal(value) is not None)):
        raise InvalidParameter("update", f"$inc on {name!r} takes a number")  # a $numberDecimal reads as its text
    modifiers = isinstance(value, dict) and any(str(k).startswith("$") for k in value)
    if op in ("$push", "$addToSet") and modifiers and (set(value) != {"$each"} or not isinstance(value["$each"], list)):
        raise InvalidParameter("update", f"{op} on {name!r}: of the modifiers, only $each (a list) is supported")
    if op == "$pull" and isinstance(value, dict) and any(str(k).startswith("$") for k in value):
        raise InvalidParameter("update", f"$pull on {name!r} takes a value or an object to match, not a condition")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _decimal(value: Any) -> decimal.Decimal | None:
    """A finite decimal from a number or its text; ``None`` for anything else."""
    if not (_number(value) or isinstance(value, str)):
        return None
    try:
        number = decimal.Decimal(str(value))
    except decimal.InvalidOperation:
        return None
    return number if number.is_finite() else None


def _is_decimal(resource: Resource, path: tuple[str, ...]) -> bool:
    try:
        field = resolve(resource.doc_cls, "__".join(p for p in path if not p.isdigit())).field
    except UnknownField:
        return False
    while isinstance(field, mf.ListField) and field.field is not None:
        field = field.field
    return isinstance(field, mf.DecimalField)


def apply_changes(document: Mapping[str, Any], changes: list[Change]) -> dict[str, Any]:
    """``document`` (a JSON representation) with ``changes`` applied, as MongoDB would apply them to it."""
    out = copy.deepcopy(dict(document))
    for change in changes:
        container, key = _locate(out, change)
        if container is not None:
            _APPLY[change.op](container, key, change)
    return out


def _locate(document: dict[str, Any], change: Change) -> tuple[Any, Any]:
    """The object (or list) holding the last step of ``change.path``, and that step; (None, None) when absent
    for an operator that then does nothing ($unset, $pull). Missing objects on the way are made."""
    current: Any = document
    for depth, step in enumerate(change.path):
        key: Any = step
        if isinstance(current, list):
            if not (step.isascii() and step.isdigit()) or int(step) >= len(current) + (depth == len(change.path) - 1):
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


def _set(container: Any, key: Any, change: Change) -> None:
    _put(container, key, change.value)


def _unset(container: Any, key: Any, change: Change) -> None:
    if len(change.path) == 1 or isinstance(container, list):
        container[key] = None  # a top-level field reads as null once unset; a list keeps its positions
    else:
        container.pop(key, None)


def _inc(container: Any, key: Any, change: Change) -> None:
    """Add exactly: a decimal field (shown as text) in decimal arithmetic, any other number as JSON numbers add."""
    current = container[key] if isinstance(container, list) else container.get(key)
    name = ".".join(change.path)
    if change.decimal:
        total = _decimal("0" if current is None else current)
        operand = _decimal(change.value)
        if total is None or operand is None:
            raise InvalidParameter("update", f"$inc: {name!r} does not hold a number")
        _put(container, key, str(total + operand))
        return
    if current is None:
        current = 0
    if not _number(current) or not _number(change.value):
        raise InvalidParameter("update", f"$inc: {name!r} and the increment must be numbers")
    _put(container, key, current + change.value)


def _list_at(container: Any, key: Any, change: Change) -> list[Any]:
    current = container[key] if isinstance(container, list) else container.get(key)
    if current is None:
        current = []
        _put(container, key, current)
    if not isinstance(current, list):
        raise InvalidParameter("update", f"{change.op}: {'.'.join(change.path)!r} does not hold a list")
    return current


def _items(change: Change) -> list[Any]:
    value = change.value
    return list(value["$each"]) if isinstance(value, dict) and "$each" in value else [value]


def _push(container: Any, key: Any, change: Change) -> None:
    _list_at(container, key, change).extend(_items(change))


def _add_to_set(container: Any, key: Any, change: Change) -> None:
    current = _list_at(container, key, change)
    for item in _items(change):
        if item not in current:
            current.append(item)


def _pull(container: Any, key: Any, change: Change) -> None:
    current = container[key] if isinstance(container, list) else container.get(key)
    if not isinstance(current, list):
        return
    wanted = change.value

    def matches(item: Any) -> bool:
        if isinstance(wanted, dict):  # an object matches elements holding all of its members
            return isinstance(item, dict) and all(item.get(k) == v for k, v in wanted.items())
        return bool(item == wanted)

    _put(container, key, [item for item in current if not matches(item)])


_APPLY: dict[str, Callable[[Any, Any, Change], None]] = {
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
                _nest(out, key, plain(value["$eq"], "filter"))
        else:
            _nest(out, key, plain(value, "filter"))
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
