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

The rules per field type are in :mod:`restengine.api.fields`; this module is
the document-level entry point the views and writes use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mongoengine.base import BaseField, get_document

from restengine.api.fields import (
    build_embedded,
    decode_embedded,
    format_datetime,
    input_values,
    jsonable,
    object_id,
    parse_datetime,
    parse_json,
    pk_value,
    plan,
)

__all__ = [
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
]


def decode_document(
    doc_cls: type[Any], raw: Mapping[str, Any], exposed: frozenset[str] | None, with_cls: bool
) -> dict[str, Any]:
    """A stored document as its JSON representation, limited to ``exposed`` attribute names.

    A subclass instance (``_cls``) is decoded with its own class's fields.
    """
    if "_cls" in raw and raw["_cls"] != doc_cls._class_name:
        doc_cls = get_document(raw["_cls"])
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


def input_value(field: BaseField, value: Any) -> Any:
    """A JSON value as what MongoEngine expects to be assigned to ``field``.

    Raises ``ValueError`` (or :class:`InputError` for nested documents) with a
    message for the client. References are returned as DBRefs, not checked here.
    """
    return parse_json(field, value)
