"""Field types holding one value: text, numbers, booleans, dates, ids, bytes, enums, files and geometry."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import math
import re
import uuid
from typing import Any, ClassVar

from bson import ObjectId
from mongoengine import fields as mf
from mongoengine.base import BaseField

from restengine.api.fields.base import (
    INT64,
    INTEGER_TEXT,
    OBJECT_ID,
    OBJECT_ID_INPUT,
    Classes,
    Components,
    Converter,
    FieldType,
    Schema,
    ecma_pattern,
    expect,
    format_datetime,
    object_id,
    parse_bool,
    parse_datetime,
    parse_int,
    query_parser,
    ref_id,
    wrong_type,
)
from restengine.api.operators import MAX_VALUE_LENGTH

BASE64 = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
DECIMAL = "^-?[0-9]+(?:\\.[0-9]+)?$"
DECIMAL_INPUT = "^[+-]?(?:[0-9]+(?:\\.[0-9]*)?|\\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
NO_NUL = "^[^\\u0000]*$"
LIST_ITEM = "^[^,\\u0000]+$"  # ``in``/``nin``/``all`` split on commas

_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_query_datetime = query_parser(parse_datetime, "expected an ISO 8601 date or date-time")  # naive UTC, as stored
_query_object_id = query_parser(ObjectId, "expected a 24-character hexadecimal ObjectId")
_query_uuid = query_parser(uuid.UUID, "expected a UUID")


def bounded(schema: Schema, field: BaseField, *, numeric: bool) -> Schema:
    """``min_value``/``max_value`` as ``minimum``/``maximum`` (numbers) or in the description (decimal strings)."""
    low, high = getattr(field, "min_value", None), getattr(field, "max_value", None)
    if numeric:
        cast = int if schema.get("type") == "integer" else float
        if low is not None:
            schema["minimum"] = cast(low)
        if high is not None:
            schema["maximum"] = cast(high)
    else:
        text = _bounds_text(field)
        if text:
            schema["description"] = text
        if low is not None:
            schema["x-minimum"] = str(low)
        if high is not None:
            schema["x-maximum"] = str(high)
    return schema


def _bounds_text(field: BaseField) -> str | None:
    low, high = getattr(field, "min_value", None), getattr(field, "max_value", None)
    parts = [f"at least {low}" if low is not None else "", f"at most {high}" if high is not None else ""]
    text = " and ".join(p for p in parts if p)
    return f"A decimal number, {text}." if text else None


def _decimal_range(schema: Schema, field: BaseField) -> Schema:
    """Bounds a DecimalField can take: it quantizes to ``precision`` places within 28 digits."""
    limit = float(10 ** (28 - int(getattr(field, "precision", 2))))
    if schema.get("minimum") is None:
        schema["exclusiveMinimum"] = -limit
    if schema.get("maximum") is None:
        schema["exclusiveMaximum"] = limit
    return schema


# ---------------------------------------------------------------- text


class StringType(FieldType):
    classes = (mf.StringField,)
    plain = True
    query_kind = "string"
    format: str | None = None

    def stored(self, value: Any) -> Any:
        return value if isinstance(value, str) else wrong_type(value, "a string")

    def parse_json(self, field: BaseField, value: Any) -> Any:
        return expect(str, value, "a string")

    def parse_query(self, field: BaseField, text: str) -> Any:
        return text

    def read_schema(self, field: BaseField, components: Components) -> Schema:
        return self.text_rules(field)

    def query_schema(self, field: BaseField, in_list: bool) -> Schema | None:
        return {"type": "string", "maxLength": MAX_VALUE_LENGTH, "pattern": LIST_ITEM if in_list else NO_NUL}

    def text_rules(self, field: BaseField) -> Schema:
        schema: Schema = {"type": "string"}
        if self.format is not None:
            schema["format"] = self.format
        if getattr(field, "max_length", None) is not None:
            schema["maxLength"] = field.max_length
        if getattr(field, "min_length", None) is not None:
            schema["minLength"] = field.min_length
        if getattr(field, "regex", None) is not None:
            schema["pattern"] = ecma_pattern(field.regex)
        return schema


class EmailType(StringType):
    classes = (mf.EmailField,)
    format = "email"


class URLType(StringType):
    classes = (mf.URLField,)
    format = "uri"


# ---------------------------------------------------------------- numbers


class IntType(FieldType):
    classes: ClassVar[Classes] = (mf.IntField, mf.LongField)
    plain = True
    query_kind = "integer"
    integer_id = True

    def stored(self, value: Any) -> Any:
        return value if isinstance(value, int) and not isinstance(value, bool) else wrong_type(value, "an integer")

    def parse_json(self, field: BaseField, value: Any) -> Any:
        number = expect(int, value, "an integer")
        if not -INT64 <= number < INT64:
            raise ValueError("must be an integer that fits in 64 bits")
        return number

    def parse_id(self, field: BaseField, text: str) -> Any:
        if not text.lstrip("-").isdigit():
            raise ValueError(text)
        return int(text)

    def parse_query(self, field: BaseField, text: str) -> Any:
        return parse_int(text)

    def read_schema(self, field: BaseField, components: Components) -> Schema:
        return bounded({"type": "integer", "format": "int64"}, field, numeric=True)

    def write_schema(self, field: BaseField, components: Components, mode: str) -> Schema:
        schema = self.read_schema(field, components)
        schema.setdefault("minimum", -INT64)
        schema.setdefault("maximum", INT64 - 1)
        return schema

    def query_schema(self, field: BaseField, in_list: bool) -> Schema | None:
        return {"type": "integer", "format": "int64", "minimum": -INT64, "maximum": INT64 - 1}

    def id_schema(self, field: BaseField) -> Schema:
        return {"type": "string", "pattern": INTEGER_TEXT}

    def id_input(self, field: BaseField) -> Schema:
        return {"anyOf": [{"type": "integer", "format": "int64"}, {"type": "string", "pattern": INTEGER_TEXT}]}

    def path_id(self, field: BaseField) -> Schema:
        return {"type": "integer", "format": "int64"}


class SequenceType(IntType):
    """A counter MongoEngine assigns: written as sent (it checks), no bounds."""

    classes = (mf.SequenceField,)
    generates_id = True

    def parse_json(self, field: BaseField, value: Any) -> Any:
        return value

    def read_schema(self, field: BaseField, components: Components) -> Schema:
        return {"type": "integer", "format": "int64"}

    def write_schema(self, field: BaseField, components: Components, mode: str) -> Schema:
        return self.read_schema(field, components)


class _NumberType(FieldType):
    """Filter values are decimal text, stored as the field stores numbers."""

    query_kind = "number"

    def stored_number(self, field: BaseField, text: str) -> Any:
        return field.to_mongo(decimal.Decimal(text))

    def parse_query(self, field: BaseField, text: str) -> Any:
        if not _NUMBER.fullmatch(text):
            raise ValueError("expected a decimal number")
        try:
            value = self.stored_number(field, text)
        except (decimal.DecimalException, OverflowError):
            value = math.inf
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("number out of range")
        return value

    def query_schema(self, field: BaseField, in_list: bool) -> Schema | None:
        return {"type": "number"}


class FloatType(_NumberType):
    classes = (mf.FloatField,)
    plain = True

    def stored_number(self, field: BaseField, text: str) -> Any:
        return float(text)

    def stored(self, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return value
        return wrong_type(value, "a finite number")

    def parse_json(self, field: BaseField, value: Any) -> Any:
        return float(expect((int, float), value, "a number"))

    def read_schema(self, field: BaseField, components: Components) -> Schema:
        return bounded({"type": "number"}, field, numeric=True)


class DecimalType(_NumberType):
    """Read as a string with the field's precision; written as a string or a number."""

    classes = (mf.DecimalField,)

    def decoder(self, field: BaseField) -> Converter:
        def decode(value: Any) -> str:
            number = field.to_python(value) if not isinstance(value, (bool, dict, list)) else value
            if not isinstance(number, decimal.Decimal) or not number.is_finite():
                return wrong_type(value, "a finite decimal number")
            return str(number)

        return decode

    def parse_json(self, field: BaseField, value: Any) -> Any:
        try:
            number = decimal.Decimal(str(expect((str, int, float), value, "a decimal number")))
            if not number.is_finite():
                raise decimal.InvalidOperation
            # MongoEngine rounds to the field's precision in the default context (28 digits)
            number.quantize(decimal.Decimal(1).scaleb(-field.precision))
        except decimal.InvalidOperation:
            raise ValueError("must be a finite decimal number of at most 28 digits") from None
        return number

    def read_schema(self, field: BaseField, components: Components) -> Schema:
        return bounded({"type": "string", "format": "decimal", "pattern": DECIMAL}, field, numeric=False)

    def write_schema(self, field: BaseField, components: Components, mode: str) -> Schema:
        return {
            "anyOf": [
                {"type": "string", "format": "decimal", "pattern": DECIMAL_INPUT},
                _decimal_range(bounded({"type": "number"}, field, numeric=True), field),
            ],
            **({"description": d} if (d := _bounds_text(field)) else {}),
        }

    def query_schema(self, field: BaseField, in_list: bool) -> Schema | None:
        return _decimal_range({"type": "number"}, field)


class Decimal128Type(_NumberType):
    classes = (mf.Decimal128Field,)

    def read_schema(self, field: BaseField, components: Components) -> Schema:
        return {"type": "string", "format": "decimal"}

    def write_schema(self, field: BaseField, components: Components, mode: str) -> Schema:
        return {"type": ["string", "number"], "format": "decimal"}


class BooleanType(FieldType):
    classes = (mf.BooleanField,)
    plain = True
    query_kind = "boolean"

    def stored(self, value: Any) -> Any:
        return value if isinstance(value, bool) else wrong_type(value, "true or false")

    def parse_json(self, field: BaseField, value: Any) -> Any:
        return expect(bool, value, "true or false")

    def parse_query(self, field: BaseField, text: str) -> Any:
        return parse_bool(text)

    def read_schema(self, field: BaseField, components: Components) -> Schema:
        return {"type": "boolean"}

    def query_schema(self, field: BaseField, in_list: bool) -> Schema | None:
        return {"type": "boolean"}


# ---------------------------------------------------------------- dates


class DateTimeType(FieldType):
    """Read as ISO 8601 UTC with ``Z`` (stored naive values are UTC); written as ISO 8601 or a date."""

    classes = (mf.DateTimeField,)
    query_kind = "datetime"

    def decoder(self, field: BaseField) -> Converter:
        return lambda v: format_datetime(v) if isinstance(v, dt.datetime) else wrong_type(v, "a date-time")

    def parse_json(self, field: BaseField, value: Any) -> Any:
        try:
            return parse_datetime(expect(str, value, "an ISO 8601 date-time"))
        except ValueError:
            raise ValueError("must be an ISO 8601 date-time") from None

    def parse_query(self, field: BaseField, text: str) -> Any:
        return field.to_mongo(_query_datetime(text))

    def read_schema(self, field: BaseField, components: Components) -> Schema:
        return {"type": "string", "format": "date-time", "pattern": "Z$"}

    def write_schema(self, field: BaseField, components: Components, mode: str) -> Schema:
        return {  # typed alternatives: generators make ``datetime | date`` of them, not ``Any``
            "anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}],
            "description": "ISO 8601 (`codec.parse_datetime`); a date alone is midnight UTC.",
        }

    def query_schema(self, field: BaseField, in_list: bool) -> Schema | None:
        return {"type": "string", "format": "date-time"}


class DateType(DateTimeType):
    classes = (mf.DateField,)

    def decoder(self, field: BaseField) -> Converter:
        return lambda v: v.date().isoformat() if isinstance(v, dt.datetime) else wrong_type(v, "a date")

    def read_schema(self, field: BaseField, components: Components) -> Schema:
        return {"type": "string", "format": "date"}


class ComplexDateTimeType(DateTimeType, StringType):
    """A datetime stored as a sortable string: a date-time to clients, a string key as a primary key."""

    classes = (mf.ComplexDateTimeField,)
    plain = False

    def decoder(self, field: BaseField) -> Converter:
        return lambda v: format_datetime(field.to_python(v))


# ---------------------------------------------------------------- ids and bytes


class ObjectIdType(FieldType):
    classes = (mf.ObjectIdField,)
    query_kind = "objectid"
    generates_id = True

    def decoder(self, field: BaseField) -> Converter:
        return lambda v: str(v) if isinstance(v, ObjectId) else wrong_type(v, "an ObjectId")

    def parse_json(self, field: BaseField, value: Any) -> Any:
        return object_id(expect(str, value, "an ObjectId string"))

    def parse_id(self, field: BaseField, text: str) -> Any:
        return object_id(text)

    def parse_query(self, field: BaseField, text: str) -> Any:
        return _query_object_id(text)

    def read_schema(self, field: BaseField, components: Components) -> Schema:
        return self.id_schema(field)

    def write_schema(self, field: BaseField, components: Components, mode: str) -> Schema:
        return self.id_input(field)

    def query_schema(self, field: BaseField, in_list: bool) -> Schema | None:
        return self.id_input(field)

    def id_schema(self, field: BaseField) -> Schema:
        return {"type": "string", "pattern": OBJECT_ID}

    def id_input(self, field: BaseField) -> Schema:
        return {"type": "string", "pattern": OBJECT_ID_INPUT}

    def path_id(self, field: BaseField) -> Schema:
        return self.id_input(field)


class UUIDType(FieldType):
    classes = (mf.UUIDField,)
    query_kind = "uuid"

    def decoder(self, field: BaseField) -> Converter:
        return _uuid_text

    def parse_json(self, field: BaseField, value: Any) -> Any:
        return uuid.UUID(expect(str, value, "a UUID string"))

    def parse_id(self, field: BaseField, text: str) -> Any:
        """The key as stored: a ``uuid.UUID`` (binary), or its canonical text (``binary=False``, what
        MongoEngine writes for a UUID), so a lookup by ``_id`` finds it."""
        value = uuid.UUID(text)
        return value if field._binary else str(value)

    def parse_query(self, field: BaseField, text: str) -> Any:
        return _query_uuid(text) if field._binary else str(_query_uuid(text))

    def read_schema(self, field: BaseField, components: Components) -> Schema:
        return self.id_schema(field)

    def query_schema(self, field: BaseField, in_list: bool) -> Schema | None:
        return self.id_schema(field)

    def id_schema(self, field: BaseField) -> Schema:
        return {"type": "string", "format": "uuid"}

    def id_input(self, field: BaseField) -> Schema:
        return self.id_schema(field)

    def path_id(self, field: BaseField) -> Schema:
        return self.id_schema(field)


class BinaryType(FieldType):
    """Bytes as base64 text."""

    classes = (mf.BinaryField,)

    def decoder(self, field: BaseField) -> Converter:
        return lambda v: base64.b64encode(v).decode() if isinstance(v, bytes) else wrong_type(v, "bytes")

    def parse_json(self, field: BaseField, value: Any) -> Any:
        try:
            return base64.b64decode(expect(str, value, "base64 text"), validate=True)
        except binascii.Error:
            raise ValueError("must be base64 text") from None

    def read_schema(self, field: BaseField, components: Components) -> Schema:
        schema: Schema = {"type": "string", "contentEncoding": "base64", "pattern": BASE64}
        max_bytes = getattr(field, "max_bytes", None)
        if max_bytes is not None:
            schema["maxLength"] = 4 * -(-int(max_bytes) // 3)
        return schema


class FileType(FieldType):
    """A GridFS file: read as its id, never written through the API."""

    classes = (mf.FileField,)

    def decoder(self, field: BaseField) -> Converter:
        return ref_id

    def read_schema(self, field: BaseField, components: Components) -> Schema:
        return {"type": "string", "description": "The id of the stored file."}

    def write_schema(self, field: BaseField, components: Components, mode: str) -> Schema:
        return {"readOnly": True}


class EnumType(FieldType):
    """An enum's values (its ``choices``, a subset of the members, when given)."""

    classes = (mf.EnumField,)
    plain = True
    query_kind = "enum"
    choices_are_values = False

    def decoder(self, field: BaseField) -> Converter:
        values = {member.value for member in field._enum_cls if isinstance(member.value, (str, int, float))}
        return lambda v: v if not isinstance(v, bool) and _member(v, values) else wrong_type(v, "a value of the enum")

    def parse_json(self, field: BaseField, value: Any) -> Any:
        try:
            return field._enum_cls(value)
        except ValueError:
            raise ValueError(f"must be one of {[e.value for e in field._enum_cls]}") from None

    def parse_query(self, field: BaseField, text: str) -> Any:
        members = {str(member.value): member for member in field._enum_cls}
        if text not in members:
            raise ValueError("expected one of: " + ", ".join(members))
        return field.to_mongo(members[text])

    def read_schema(self, field: BaseField, components: Components) -> Schema:
        allowed = field.choices or list(field._enum_cls)
        values = [member.value for member in allowed]
        kinds = {"string" if isinstance(v, str) else "integer" if isinstance(v, int) else "other" for v in values}
        return {"type": kinds.pop(), "enum": values} if len(kinds) == 1 and "other" not in kinds else {"enum": values}

    def query_schema(self, field: BaseField, in_list: bool) -> Schema | None:
        return {"type": "string", "enum": [str(member.value) for member in field._enum_cls]}


def _member(value: Any, values: set[Any]) -> bool:
    try:
        return value in values
    except TypeError:  # unhashable
        return False


def _uuid_text(value: Any) -> str:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        try:
            uuid.UUID(value)
        except ValueError:
            pass
        else:
            return value
    return wrong_type(value, "a UUID")


# ---------------------------------------------------------------- geometry


class GeoPointType(FieldType):
    classes = (mf.GeoPointField,)
    sortable = False  # a pair of numbers: a cursor cannot carry it

    def read_schema(self, field: BaseField, components: Components) -> Schema:
        return {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}


class GeoJsonType(FieldType):
    """GeoJSON objects; written as an object or its coordinates alone."""

    classes = (mf.GeoJsonBaseField,)
    sortable = False

    def read_schema(self, field: BaseField, components: Components) -> Schema:
        return {
            "type": "object",
            "description": f"GeoJSON {field._type}",
            "properties": {"type": {"const": field._type}, "coordinates": {"type": "array"}},
            "required": ["type", "coordinates"],
        }

    def write_schema(self, field: BaseField, components: Components, mode: str) -> Schema:
        return {
            "anyOf": [{"type": "array"}, self.read_schema(field, components)],
            "description": f"GeoJSON {field._type}, or its coordinates alone.",
        }
