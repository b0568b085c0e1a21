"""Stored documents to JSON, and JSON to field values, per MongoEngine field type.

Reading takes a fast path: the raw BSON document (already projected by the
query) is turned into JSON-ready values by one small converter per field,
chosen once per class, without building Document instances. The output is
what the Document's own values would give:

- ``id`` is the primary key as a string, whatever its type;
- field names are attribute names, never ``db_field`` names;
- a ReferenceField is the referenced id; a GenericReferenceField is
  ``{"_cls": ..., "id": ...}``; embedded documents are objects;
- datetimes are ISO 8601 UTC with ``Z`` (stored naive values are UTC);
  Decimal is a string with the field's precision; bytes are base64.

A field missing from the stored document reads as ``null``, or as its
default when that is a constant, an empty list or an empty dict.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import mongoengine
from bson import DBRef, Decimal128, ObjectId
from bson.errors import InvalidId
from mongoengine import fields as mf
from mongoengine.base import BaseField, get_document

from restengine.api.model import pk_name
from restengine.errors import InputError

Converter = Callable[[Any], Any]


# ---------------------------------------------------------------- reading


def format_datetime(value: dt.datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    text = f"{value.year:04d}" + value.strftime("-%m-%dT%H:%M:%S")  # %Y does not pad years before 1000
    if value.microsecond:
        text += f".{value.microsecond // 1000:03d}"
    return text + "Z"


def jsonable(value: Any) -> Any:
    """Any BSON value as JSON (for DictField and unknown field types)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        return format_datetime(value)
    if isinstance(value, (ObjectId, uuid.UUID, decimal.Decimal)):
        return str(value)
    if isinstance(value, Decimal128):
        return str(value.to_decimal())
    if isinstance(value, DBRef):
        return str(value.id)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def _ref_id(value: Any) -> Any:
    if isinstance(value, DBRef):
        value = value.id
    elif isinstance(value, dict) and "_id" in value:  # CachedReferenceField
        value = value["_id"]
    return None if value is None else str(value)


def _generic_ref(value: Any) -> Any:
    if not isinstance(value, dict):
        return jsonable(value)
    ref = value.get("_ref")
    return {"_cls": value.get("_cls"), "id": None if ref is None else str(getattr(ref, "id", ref))}


def _converter(field: BaseField) -> Converter:
    """The stored-value -> JSON converter for one field (checked most specific first)."""
    if isinstance(field, (mf.ListField, mf.SortedListField)):
        inner = _converter(field.field) if field.field is not None else jsonable
        return lambda v: [None if x is None else inner(x) for x in v] if isinstance(v, list) else jsonable(v)
    if isinstance(field, mf.MapField):
        inner = _converter(field.field)
        return lambda v: {k: inner(x) for k, x in v.items()} if isinstance(v, dict) else jsonable(v)
    if isinstance(field, mf.EmbeddedDocumentField):
        embedded = field.document_type
        return lambda v: decode_embedded(embedded, v)
    if isinstance(field, mf.GenericEmbeddedDocumentField):
        return lambda v: decode_embedded(get_document(v["_cls"]), v) if isinstance(v, dict) and "_cls" in v else v
    if isinstance(field, (mf.ReferenceField, mf.CachedReferenceField, mf.LazyReferenceField)):
        return _ref_id
    if isinstance(field, (mf.GenericReferenceField, mf.GenericLazyReferenceField)):
        return _generic_ref
    if isinstance(field, mf.ComplexDateTimeField):
        return lambda v: format_datetime(field.to_python(v))
    if isinstance(field, mf.DateField):
        return lambda v: v.date().isoformat() if isinstance(v, dt.datetime) else jsonable(v)
    if isinstance(field, mf.DateTimeField):
        return lambda v: format_datetime(v) if isinstance(v, dt.datetime) else jsonable(v)
    if isinstance(field, mf.DecimalField):
        return lambda v: str(field.to_python(v))
    if isinstance(field, (mf.ObjectIdField, mf.UUIDField)):
        return str
    if isinstance(field, mf.BinaryField):
        return lambda v: base64.b64encode(bytes(v)).decode()
    if isinstance(field, mf.FileField):
        return _ref_id
    if type(field) in _PLAIN:
        return _identity
    return lambda v: jsonable(field.to_python(v))


def _identity(value: Any) -> Any:
    return value


_PLAIN = {
    mf.StringField, mf.EmailField, mf.URLField, mf.IntField, mf.LongField, mf.FloatField,
    mf.BooleanField, mf.SequenceField, mf.EnumField, mf.DictField,
}  # fmt: skip


def _default(field: BaseField) -> Any:
    default = field.default
    if callable(default):
        return [] if isinstance(field, mf.ListField) else {} if isinstance(field, mf.DictField) else None
    return jsonable(field.to_mongo(default)) if default is not None else None


_Plan = tuple[tuple[str, str, Converter, Any], ...]
_plans: dict[type[Any], _Plan] = {}


def _plan(doc_cls: type[Any]) -> _Plan:
    """(attribute, db_field, converter, missing value) for every field but the pk and _cls; built once a class."""
    plan = _plans.get(doc_cls)
    if plan is None:
        plan = _plans[doc_cls] = _build_plan(doc_cls)
    return plan


def _build_plan(doc_cls: type[Any]) -> _Plan:
    pk = pk_name(doc_cls) if issubclass(doc_cls, mongoengine.Document) else None
    return tuple(
        (name, field.db_field, _converter(field), _default(field))
        for name, field in ((n, doc_cls._fields[n]) for n in doc_cls._fields_ordered)
        if name not in (pk, "_cls")
    )


def decode_embedded(doc_cls: type[Any], raw: Any) -> Any:
    if not isinstance(raw, dict):
        return jsonable(raw)
    if "_cls" in raw and raw["_cls"] != doc_cls._class_name:
        doc_cls = get_document(raw["_cls"])
    out: dict[str, Any] = {"_cls": raw["_cls"]} if "_cls" in raw else {}
    for name, db_field, convert, missing in _plan(doc_cls):
        value = raw.get(db_field)
        out[name] = missing if value is None and db_field not in raw else None if value is None else convert(value)
    return out


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
    for name, db_field, convert, missing in _plan(doc_cls):
        if exposed is not None and name not in exposed:
            continue
        if db_field in raw:
            value = raw[db_field]
            out[name] = None if value is None else convert(value)
        else:
            out[name] = missing
    return out


# ---------------------------------------------------------------- writing


def parse_datetime(text: str) -> dt.datetime:
    """ISO 8601 (``Z`` or an offset, or a plain date) as a naive UTC datetime."""
    value = dt.datetime.fromisoformat(text.strip().replace("z", "Z").replace("Z", "+00:00"))
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def pk_value(doc_cls: type[Any], text: str) -> Any:
    """A primary key from its string form; raises ``ValueError`` when it cannot be one."""
    field = doc_cls._fields[pk_name(doc_cls)]
    if isinstance(field, mf.ObjectIdField):
        return object_id(text)
    if isinstance(field, mf.UUIDField):
        return uuid.UUID(text)
    if isinstance(field, (mf.IntField, mf.LongField, mf.SequenceField)):
        if not text.lstrip("-").isdigit():
            raise ValueError(text)
        return int(text)
    return text


def object_id(text: str) -> ObjectId:
    """An ObjectId from its 24 hex digits; ``ValueError`` (bson's InvalidId is not one) otherwise."""
    try:
        return ObjectId(text)
    except InvalidId:
        raise ValueError("must be an ObjectId (24 hex digits)") from None


def _expect(kind: type | tuple[type, ...], value: Any, what: str) -> Any:
    """``value`` if it is a ``kind`` (a JSON true/false is never a number); else ``ValueError``."""
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ValueError(f"must be {what}")
    return value


def input_value(field: BaseField, value: Any) -> Any:
    """A JSON value as what MongoEngine expects to be assigned to ``field``.

    Raises ``ValueError`` (or :class:`InputError` for nested documents) with a
    message for the client. References are returned as DBRefs, not checked here.
    """
    if value is None:
        return None
    if isinstance(field, (mf.ListField, mf.SortedListField)):
        _expect(list, value, "a list")
        if any(v is None for v in value):
            raise ValueError("list items must not be null")
        inner = field.field
        return [input_value(inner, v) if inner is not None else v for v in value]
    if isinstance(field, mf.MapField):
        _expect(dict, value, "an object")
        return {k: input_value(field.field, v) for k, v in value.items()}
    if isinstance(field, mf.EmbeddedDocumentField):
        return build_embedded(field.document_type, _expect(dict, value, "an object"))
    if isinstance(field, mf.GenericEmbeddedDocumentField):
        _expect(dict, value, "an object with _cls")
        try:
            embedded = get_document(str(value.get("_cls")))
        except mongoengine.errors.NotRegistered:
            raise ValueError(f"unknown document class {value.get('_cls')!r}") from None
        return build_embedded(embedded, value)
    if isinstance(field, (mf.ReferenceField, mf.LazyReferenceField, mf.CachedReferenceField)):
        target = field.document_type
        return DBRef(target._get_collection_name(), pk_value(target, str(_expect((str, int), value, "an id"))))
    if isinstance(field, (mf.GenericReferenceField, mf.GenericLazyReferenceField)):
        _expect(dict, value, 'an object {"_cls": ..., "id": ...}')
        try:
            target = get_document(str(value.get("_cls")))
        except mongoengine.errors.NotRegistered:
            raise ValueError(f"unknown document class {value.get('_cls')!r}") from None
        ref = DBRef(target._get_collection_name(), pk_value(target, str(value.get("id"))))
        return {"_cls": target._class_name, "_ref": ref}  # MongoEngine's stored form
    if isinstance(field, (mf.ComplexDateTimeField, mf.DateTimeField)):
        try:
            return parse_datetime(_expect(str, value, "an ISO 8601 date-time"))
        except ValueError:
            raise ValueError("must be an ISO 8601 date-time") from None
    if isinstance(field, mf.DecimalField):
        try:
            number = decimal.Decimal(str(_expect((str, int, float), value, "a decimal number")))
            if not number.is_finite():
                raise decimal.InvalidOperation
            # MongoEngine rounds to the field's precision in the default context (28 digits)
            number.quantize(decimal.Decimal(1).scaleb(-field.precision))
        except decimal.InvalidOperation:
            raise ValueError("must be a finite decimal number of at most 28 digits") from None
        return number
    if isinstance(field, mf.ObjectIdField):
        return object_id(_expect(str, value, "an ObjectId string"))
    if isinstance(field, mf.UUIDField):
        return uuid.UUID(_expect(str, value, "a UUID string"))
    if isinstance(field, mf.BinaryField):
        try:
            return base64.b64decode(_expect(str, value, "base64 text"), validate=True)
        except binascii.Error:
            raise ValueError("must be base64 text") from None
    if isinstance(field, mf.BooleanField):
        return _expect(bool, value, "true or false")
    if isinstance(field, (mf.IntField, mf.LongField)):
        number = _expect(int, value, "an integer")
        if not -(2**63) <= number < 2**63:
            raise ValueError("must be an integer that fits in 64 bits")
        return number
    if isinstance(field, mf.FloatField):
        return float(_expect((int, float), value, "a number"))
    if isinstance(field, mf.StringField):
        return _expect(str, value, "a string")
    if isinstance(field, mf.EnumField):
        try:
            return field._enum_cls(value)
        except ValueError:
            raise ValueError(f"must be one of {[e.value for e in field._enum_cls]}") from None
    return value


def build_embedded(doc_cls: type[Any], body: Mapping[str, Any]) -> Any:
    """An EmbeddedDocument from a JSON object; unknown keys are errors."""
    values, errors = input_values(doc_cls, body, writable=None)
    if errors:
        raise InputError(errors)
    return doc_cls(**values)


def input_values(
    doc_cls: type[Any], body: Mapping[str, Any], writable: frozenset[str] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Convert a JSON object's members to field values: (values, errors by field name).

    ``writable`` limits which attribute names a client may set (``None``: all but the pk).
    ``_cls`` is accepted and ignored (the class is chosen by the URL).
    """
    values: dict[str, Any] = {}
    errors: dict[str, Any] = {}
    fields = doc_cls._fields
    for name, value in body.items():
        if name == "_cls":
            continue
        if name not in fields or name.startswith("_") or (writable is not None and name not in writable):
            errors[name] = "unknown or read-only field"
            continue
        try:
            values[name] = input_value(fields[name], value)
        except InputError as exc:
            errors[name] = exc.errors
        except (ValueError, TypeError) as exc:
            errors[name] = str(exc) or "invalid value"
    return values, errors
