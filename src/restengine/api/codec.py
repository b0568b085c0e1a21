"""Stored documents to JSON, and JSON to field values.

Reading uses direct decoding: the raw BSON document (already projected by the
query) is turned into JSON-ready values by one small converter per field,
chosen once per class (:func:`restengine.api.fields.plan`), without building
Document instances. The output is what the Document's own values would give:

- ``id`` is the primary key as a string, whatever its type;
- field names are attribute names, never ``db_field`` names;
- a ReferenceField is the referenced id; a GenericReferenceField is
  ``{"_cls": ..., "id": ...}``; embedded documents are objects;
- datetimes are ISO 8601 UTC with ``Z`` (stored naive values are UTC);
  Decimal is a string with the field's precision; bytes are base64.

A field missing from the stored document reads as ``null``, or as its
default when that is a constant, an empty list or an empty dict.

Stored data never breaks a read. A value the field's type cannot render (a
wrong type, a value JSON cannot hold, a ``_cls`` naming no subclass, a value
nested deeper than 100 levels) reads as ``null``, and the item lists its path
in ``"_unreadable"`` (dotted, list positions and map keys included, e.g.
``"lines.1.quantity"``, sorted; the member is absent when all is readable).
Each class and field path is logged once per process, as a warning naming the
collection, the document's id, the path and the reason. A document decodes on
the fast path first; only when something fails is it decoded again, value by
value (:func:`_salvage`).

The rules per field type are in :mod:`restengine.api.fields`; this module is
the document-level entry point the views and writes use.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from typing import Any

from mongoengine.base import BaseField

from restengine.api.fields import (
    Unreadable,
    build_embedded,
    decode_embedded,
    decoder,
    field_type,
    format_datetime,
    input_values,
    jsonable,
    object_id,
    parse_datetime,
    parse_json,
    pk_value,
    plan,
    stored_class,
)
from restengine.api.fields.compound import EmbeddedType, GenericEmbeddedType, ListType, MapType
from restengine.errors import Conflict

__all__ = [
    "UNREADABLE",
    "build_embedded",
    "decode_document",
    "decode_embedded",
    "format_datetime",
    "input_value",
    "input_values",
    "jsonable",
    "object_id",
    "parse_datetime",
    "pk_value",
    "stored_document",
    "unreadable_fields",
    "unreadable_values",
]

UNREADABLE = "_unreadable"
"""The member of an item listing the paths of the stored values it shows as ``null`` because they cannot be read."""

log = logging.getLogger(__name__)


def decode_document(
    doc_cls: type[Any], raw: Mapping[str, Any], exposed: frozenset[str] | None, with_cls: bool
) -> dict[str, Any]:
    """A stored document as its JSON representation, limited to ``exposed`` attribute names.

    A subclass instance (``_cls``) is decoded with its own class's fields. What
    cannot be read is ``null`` and listed in ``_unreadable`` (see the module).
    """
    try:
        return _decode(doc_cls, raw, exposed, with_cls)
    except Exception:  # any failure of any decoder: decode again value by value
        return _salvage(doc_cls, raw, exposed, with_cls)


def _decode(
    doc_cls: type[Any], raw: Mapping[str, Any], exposed: frozenset[str] | None, with_cls: bool
) -> dict[str, Any]:
    if with_cls and "_cls" in raw and raw["_cls"] != doc_cls._class_name:
        doc_cls = stored_class(doc_cls, raw["_cls"])
    out: dict[str, Any] = {"id": str(raw["_id"]) if "_id" in raw else None}
    if with_cls and "_cls" in raw:
        out["_cls"] = raw["_cls"]
    for name, db_field, convert, missing in plan(doc_cls):
        if exposed is not None and name not in exposed:
            continue
        if db_field in raw:
            value = raw[db_field]
            out[name] = None if value is None else convert(value)
        else:
            out[name] = missing
    return out


# ---------------------------------------------------------------- unreadable values

Problems = list[tuple[str, str, str]]  # (path in this item, path in the class with * for positions and keys, reason)


def unreadable_values(doc_cls: type[Any], raw: Mapping[str, Any], with_cls: bool) -> Problems:
    """Each stored value of ``raw`` the API reads as ``null`` (what ``_unreadable`` would list), with why; not logged.

    (path in the item, path in the class with ``*`` for list positions and map keys, reason), sorted;
    ``[]`` when the whole document reads.
    """
    try:
        _decode(doc_cls, raw, None, with_cls)
        return []
    except Exception:  # as decode_document: read again value by value
        problems: Problems = []
        _salvaged(doc_cls, raw, None, with_cls, problems)
        return sorted(set(problems))


def _salvage(
    doc_cls: type[Any], raw: Mapping[str, Any], exposed: frozenset[str] | None, with_cls: bool
) -> dict[str, Any]:
    """:func:`_decode`, each value that fails read as ``null`` and listed in ``_unreadable`` (and logged once)."""
    problems: Problems = []
    out = _salvaged(doc_cls, raw, exposed, with_cls, problems)
    if problems:
        out[UNREADABLE] = sorted({path for path, _, _ in problems})
        _report(doc_cls, raw.get("_id"), problems)
    return out


def _salvaged(
    doc_cls: type[Any], raw: Mapping[str, Any], exposed: frozenset[str] | None, with_cls: bool, problems: Problems
) -> dict[str, Any]:
    out: dict[str, Any] = {"id": str(raw["_id"]) if "_id" in raw else None}
    if with_cls and "_cls" in raw:  # a class without inheritance ignores a stored _cls, as MongoEngine does
        try:
            doc_cls = stored_class(doc_cls, raw["_cls"])
            out["_cls"] = raw["_cls"]
        except Unreadable as exc:
            problems.append(("_cls", "_cls", str(exc)))
            out["_cls"] = None
    out.update(_fields(doc_cls, raw, exposed, "", "", problems))
    return out


def _fields(
    doc_cls: type[Any],
    raw: Mapping[str, Any],
    exposed: frozenset[str] | None,
    path: str,
    where: str,
    problems: Problems,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, db_field, convert, missing in plan(doc_cls):
        if exposed is not None and name not in exposed:
            continue
        if db_field not in raw:
            out[name] = missing
            continue
        value = raw[db_field]
        field = doc_cls._fields[name]
        out[name] = None if value is None else _value(field, value, path + name, where + name, problems, convert)
    return out


def _value(field: BaseField, value: Any, path: str, where: str, problems: Problems, convert: Any = None) -> Any:
    """One stored value as JSON; what fails inside it is ``null`` as deep down as it can be told apart."""
    try:
        return (convert or decoder(field))(value)
    except Exception as exc:
        failure: Exception = exc
    kind = field_type(field)
    inner = getattr(field, "field", None)
    if isinstance(kind, EmbeddedType) and isinstance(value, dict):
        return _embedded(field.document_type, value, path, where, problems)
    if isinstance(kind, GenericEmbeddedType) and isinstance(value, dict) and isinstance(value.get("_cls"), str):
        return _embedded(None, value, path, where, problems)
    if isinstance(kind, ListType) and isinstance(value, list) and len(value) > 0:
        return [
            None if x is None else _element(inner, x, f"{path}.{i}", f"{where}.*", problems)
            for i, x in enumerate(value)
        ]
    if isinstance(kind, MapType) and isinstance(value, dict) and inner is not None:
        return {
            k: None if x is None else _value(inner, x, f"{path}.{k}", f"{where}.*", problems) for k, x in value.items()
        }
    problems.append((path, where, _reason(failure)))
    return None


def _element(inner: BaseField | None, value: Any, path: str, where: str, problems: Problems) -> Any:
    if inner is not None:
        return _value(inner, value, path, where, problems)
    try:
        return jsonable(value, 1)
    except Exception as exc:
        problems.append((path, where, _reason(exc)))
        return None


def _embedded(declared: type[Any] | None, raw: Mapping[str, Any], path: str, where: str, problems: Problems) -> Any:
    """An embedded document value by value; a ``_cls`` naming no (sub)class of ``declared`` is ``null``, the rest
    read with ``declared``'s fields (of a generic one, with none)."""
    out: dict[str, Any] = {}
    doc_cls = declared
    if "_cls" in raw:
        try:
            doc_cls = _named(declared, raw["_cls"])
            out["_cls"] = raw["_cls"]
        except Exception as exc:
            problems.append((f"{path}._cls", f"{where}._cls", _reason(exc)))
            out["_cls"] = None
    if doc_cls is None:
        return out
    out.update(_fields(doc_cls, raw, None, path + ".", where + ".", problems))
    return out


def _named(declared: type[Any] | None, name: Any) -> type[Any]:
    if declared is not None:
        return stored_class(declared, name)
    from mongoengine.base import get_document

    found: type[Any] = get_document(name)
    return found


def _reason(exc: Exception) -> str:
    text = str(exc) if isinstance(exc, Unreadable) else f"{type(exc).__name__}: {exc}"
    return re.sub(r"\s+", " ", text)[:200]


_reported: set[tuple[str, str]] = set()
_reported_lock = threading.Lock()


def _report(doc_cls: type[Any], pk: Any, problems: Problems) -> None:
    """Log each (class, field path) once per process: a warning naming the collection, the id, the path, the reason."""
    for path, where, reason in problems:
        key = (doc_cls._class_name, where)
        with _reported_lock:
            if key in _reported:
                continue
            _reported.add(key)
        collection = doc_cls._get_collection_name() if hasattr(doc_cls, "_get_collection_name") else None
        log.warning(
            "unreadable stored value: collection %s, document %r, field %s: %s"
            " (it reads as null, listed in %s; logged once per field)",
            collection, pk, path, reason, UNREADABLE,
        )  # fmt: skip


def input_value(field: BaseField, value: Any) -> Any:
    """A JSON value as what MongoEngine expects to be assigned to ``field``.

    Raises ``ValueError`` (or :class:`InputError` for nested documents) with a
    message for the client. References are returned as DBRefs, not checked here.
    """
    return parse_json(field, value)


# ---------------------------------------------------------------- loading for a write


def unreadable_fields(representation: Mapping[str, Any]) -> frozenset[str]:
    """The top-level names (attribute names, or ``_cls``) of what ``representation`` lists as unreadable."""
    return frozenset(str(path).split(".", 1)[0] for path in representation.get(UNREADABLE) or ())


def stored_document(doc_cls: type[Any], raw: Mapping[str, Any], unreadable: frozenset[str]) -> Any:
    """The Document of a stored document, for a write, as its representation reads.

    The values named in ``unreadable`` are left out (they read as ``null``: a
    write that does not set them leaves them stored as they are), and so are
    stored members the class does not declare (MongoEngine refuses them). When
    the Document still cannot be loaded (a field the representation does not
    show), every field is checked and each unreadable one left out too; if
    that fails again, :class:`~restengine.errors.Conflict`.
    """
    try:
        return _load(doc_cls, raw, unreadable)
    except Exception:
        everything = decode_document(doc_cls, raw, None, True)
        try:
            return _load(doc_cls, raw, unreadable | unreadable_fields(everything))
        except Exception as exc:
            log.warning("stored document %r of %s cannot be loaded: %s", raw.get("_id"), doc_cls.__name__, _reason(exc))
            raise Conflict("The stored item cannot be loaded to be changed; it can be read or deleted.") from None


def _load(doc_cls: type[Any], raw: Mapping[str, Any], unreadable: frozenset[str]) -> Any:
    son = dict(raw)
    cls = doc_cls
    if "_cls" in unreadable or not doc_cls._meta.get("allow_inheritance"):
        son.pop("_cls", None)
    elif "_cls" in son:
        cls = stored_class(doc_cls, son["_cls"])
    declared = {field.db_field: name for name, field in cls._fields.items()}
    for key in list(son):
        name = declared.get(key)
        if key in ("_id", "_cls"):
            continue
        if (name is None and not cls._dynamic and cls._meta.get("strict", True)) or name in unreadable:
            del son[key]
    return doc_cls._from_son(son)
