"""The base of the field-type table: :class:`FieldType`, the lookup, and the value helpers the types share.

A field type is one object per kind of MongoEngine field that knows every
rule the API has for it: how a stored value decodes to JSON, how a JSON body
value parses, how query-string text parses (and which filter operators fit),
what the OpenAPI read and write schemas say, and how a primary key of that
type is written in URLs. :func:`field_type` finds a field's type by walking
its class's MRO, so the most specific registered MongoEngine class wins
(``ComplexDateTimeField`` before ``StringField``, ``DateField`` before
``DateTimeField``). Defining a :class:`FieldType` subclass with ``classes``
registers it.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import math
import re
import uuid
from collections.abc import Callable
from typing import Any, ClassVar, NoReturn, Protocol

import mongoengine
import orjson
from bson import DBRef, Decimal128, ObjectId
from bson.errors import InvalidId
from mongoengine import fields as mf
from mongoengine.base import BaseField, ComplexBaseField

from restengine.api.model import item_field
from restengine.api.operators import COMPARISON, PRESENCE, STRING

Schema = dict[str, Any]
Classes = tuple[type[BaseField], ...]
Converter = Callable[[Any], Any]

UNFILTERABLE = "field cannot be filtered by value"
INT64 = 2**63
OBJECT_ID = "^[0-9a-f]{24}$"
OBJECT_ID_INPUT = "^[0-9a-fA-F]{24}$"
INTEGER_TEXT = "^-?[0-9]+$"


# ---------------------------------------------------------------- values


def format_datetime(value: dt.datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    text = f"{value.year:04d}" + value.strftime("-%m-%dT%H:%M:%S")  # %Y does not pad years before 1000
    if value.microsecond:
        text += f".{value.microsecond // 1000:03d}"
    return text + "Z"


def parse_datetime(text: str) -> dt.datetime:
    """ISO 8601 (``Z`` or an offset, or a plain date) as a naive UTC datetime."""
    value = dt.datetime.fromisoformat(text.strip().replace("z", "Z").replace("Z", "+00:00"))
    if value.tzinfo is not None:
        try:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        except OverflowError:  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
            raise ValueError("date-time out of range (years 1 to 9999 in UTC)") from None
    return value


MAX_DEPTH = 32  # lists and objects inside one free-form value (MongoDB allows 100 for a whole document)
TOO_DEEP = f"nested too deeply (at most {MAX_DEPTH} levels of lists and objects)"
BAD_KEY = "object keys must not start with '$' nor contain '.' or NUL"
KEY_PATTERN = "^(?:[^$.\\u0000][^.\\u0000]*)?$"  # what check_key accepts, as a JSON Schema pattern
FREE_FORM = (
    f"Stored as sent: at most {MAX_DEPTH} levels of lists and objects;"
    " no object key starts with `$` or contains `.` (or NUL)."
)


def check_key(key: Any) -> str:
    """A key of a stored object: a string MongoDB stores as a field name, not an operator or a path."""
    if not isinstance(key, str) or key.startswith("$") or "." in key or "\0" in key:
        raise ValueError(f"{BAD_KEY}: {key!r}"[:200])
    return key


def free_form(value: Any, depth: int = 0) -> Any:
    """A JSON value stored as sent, checked: at most :data:`MAX_DEPTH` levels, no ``$``/dotted keys at any level."""
    if isinstance(value, (list, dict)):
        if depth >= MAX_DEPTH:
            raise ValueError(TOO_DEEP)
        if isinstance(value, dict):
            for key, item in value.items():
                check_key(key)
                free_form(item, depth + 1)
        else:
            for item in value:
                free_form(item, depth + 1)
    return value


class Unreadable(ValueError):
    """A stored value the API cannot render as its field's JSON (a wrong type, a value JSON cannot hold, too deep).

    Raised by decoders; the codec reads the field as ``null`` and lists its path in ``_unreadable``.
    """


MAX_READ_DEPTH = 100  # lists and objects inside one stored free-form value (MongoDB stores at most 100 levels)


def jsonable(value: Any, depth: int = 0) -> Any:
    """Any BSON value as JSON (for DictField and unknown field types); :class:`Unreadable` when JSON cannot hold it.

    Refused: values of no JSON form (Code with a scope aside, code is its text; Regex, MinKey, MaxKey, Timestamp,
    out-of-range dates), NaN and infinities, and values nested deeper than :data:`MAX_READ_DEPTH`.
    """
    if value is None or isinstance(value, (str, bool, int)):
        return value if type(value) in (str, bool, int) or value is None else _plain_scalar(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Unreadable("not a finite number")
        return value
    if isinstance(value, (dict, list, tuple)):
        if depth >= MAX_READ_DEPTH:
            raise Unreadable(f"nested deeper than {MAX_READ_DEPTH} levels")
        if isinstance(value, dict):
            return {str(k): jsonable(v, depth + 1) for k, v in value.items()}
        return [jsonable(v, depth + 1) for v in value]
    if isinstance(value, dt.datetime):
        return format_datetime(value)
    if isinstance(value, (ObjectId, uuid.UUID)):
        return str(value)
    if isinstance(value, Decimal128):
        value = value.to_decimal()
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise Unreadable("not a finite number")
        return str(value)
    if isinstance(value, DBRef):
        return jsonable(value.id, depth)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise Unreadable(f"a stored {type(value).__name__} has no JSON form")


def wrong_type(value: Any, expected: str) -> NoReturn:
    """Raise :class:`Unreadable`: a stored value that is not ``expected`` (a decoder's refusal)."""
    raise Unreadable(f"stored {type(value).__name__}, expected {expected}")


def _plain_scalar(value: Any) -> Any:
    """A subclass of str or int (bson's Code, Int64) as its plain value."""
    if isinstance(value, bool):
        return bool(value)
    return str(value) if isinstance(value, str) else int(value)


def ref_id(value: Any) -> Any:
    """A reference's stored form (DBRef, id, or CachedReferenceField's document) as the id's string."""
    if isinstance(value, DBRef):
        value = value.id
    elif isinstance(value, dict) and "_id" in value:  # CachedReferenceField
        value = value["_id"]
    if isinstance(value, (dict, list, bool, float)):
        raise Unreadable(f"a {type(value).__name__} is not a reference")
    return None if value is None else str(value)


def object_id(text: str) -> ObjectId:
    """An ObjectId from its 24 hex digits; ``ValueError`` (bson's InvalidId is not one) otherwise."""
    try:
        return ObjectId(text)
    except InvalidId:
        raise ValueError("must be an ObjectId (24 hex digits)") from None


def expect(kind: type | tuple[type, ...], value: Any, what: str) -> Any:
    """``value`` if it is a ``kind`` (a JSON true/false is never a number); else ``ValueError``."""
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ValueError(f"must be {what}")
    return value


_INT = re.compile(r"[+-]?[0-9]+")
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def parse_int(text: str, *, low: int = -INT64, high: int = INT64 - 1) -> int:
    """Query-string text as an integer between ``low`` and ``high``."""
    if not _INT.fullmatch(text):
        raise ValueError("expected an integer")
    if not low <= int(text) <= high:
        raise ValueError(f"expected an integer between {low} and {high}")
    return int(text)


def query_parser(parse: Callable[[str], Any], message: str) -> Callable[[str], Any]:
    """``parse``, any failure reported as ``ValueError(message)``."""

    def parsed(text: str) -> Any:
        try:
            return parse(text)
        except (ValueError, LookupError, ArithmeticError, InvalidId):
            raise ValueError(message) from None

    return parsed


parse_bool = query_parser(lambda text: _BOOLEANS[text.lower()], "expected true, false, 1 or 0")


# ---------------------------------------------------------------- schema pieces


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


ANNOTATIONS = frozenset({"description", "default", "readOnly", "writeOnly", "title", "examples", "deprecated"})


def nullable(schema: Schema) -> Schema:
    """``schema`` or ``null``.

    A plain typed schema gets ``null`` in its ``type`` (``["string", "null"]``); anything generators
    would otherwise mistype is ``{"anyOf": [schema, {"type": "null"}]}``: a schema with a ``format``
    (a typed, formatted alternative, so clients get ``datetime | None``, not ``Any``), a ``$ref``,
    a ``const``, no ``type``. An ``anyOf`` (with annotations only beside it) gets one more alternative.
    """
    if not schema or schema.get("type") == "null" or {"type": "null"} in schema.get("anyOf", []):
        return schema
    if "anyOf" in schema and set(schema) - {"anyOf"} <= ANNOTATIONS:
        return {**schema, "anyOf": [*schema["anyOf"], {"type": "null"}]}
    kind = schema.get("type")
    if isinstance(kind, list) and "null" in kind and ("enum" not in schema or None in schema["enum"]):
        return schema
    if kind is None or "$ref" in schema or "const" in schema or "format" in schema:
        inner = {key: value for key, value in schema.items() if key not in ANNOTATIONS}
        notes = {key: value for key, value in schema.items() if key in ANNOTATIONS}
        return {**notes, "anyOf": [inner, {"type": "null"}]}
    out = dict(schema)
    out["type"] = ([*kind, "null"] if "null" not in kind else kind) if isinstance(kind, list) else [kind, "null"]
    if "enum" in out and None not in out["enum"]:
        out["enum"] = [*out["enum"], None]
    return out


def ecma_pattern(regex: re.Pattern[str] | str) -> str:
    """A Python regex used with ``re.match`` (anchored at the start) as a JSON Schema ``pattern``."""
    text = regex.pattern if isinstance(regex, re.Pattern) else regex
    text = re.sub(r"\(\?P<", "(?<", text)
    text = re.sub(r"\(\?P=(\w+)\)", r"\\k<\1>", text)
    text = text.replace("\\A", "^").replace("\\Z", "$")
    if text.startswith("^") and "|" not in text:
        return text
    return f"^(?:{text})"


def plain_json(value: Any) -> Any:
    """``value`` if it is plain JSON, else ``Ellipsis``."""
    try:
        return orjson.loads(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError):
        return ...


def choices(field: BaseField) -> list[Any] | None:
    """A field's ``choices`` as JSON values, when they are plain values (not for enums: see EnumType)."""
    declared = getattr(field, "choices", None)
    if not declared or not field_type(field).choices_are_values:
        return None
    values = [c[0] if isinstance(c, (list, tuple)) else c for c in declared]
    if any(isinstance(v, (mongoengine.Document, mongoengine.EmbeddedDocument, type)) for v in values):
        return None
    values = [plain_json(v) for v in values]
    return None if ... in values else values


class Components(Protocol):
    """What a field type's schema needs from the OpenAPI builder: other fields' schemas and named components."""

    def read(self, field: BaseField) -> Schema: ...

    def write(self, field: BaseField, mode: str = "create") -> Schema: ...

    def embedded(self, cls: type[Any], mode: str, generic: bool = False) -> str:
        """The component name of an EmbeddedDocument class: ``read``, ``write`` or ``patch`` mode."""
        ...

    def reference_label(self, target: type[Any]) -> str | None:
        """The name of the resource serving a referenced Document class; ``None`` when none serves it."""
        ...

    def item_component(self, target: type[Any]) -> str | None:
        """The component name of ``target``'s items as responses hold them; ``None`` when no resource serves it."""
        ...

    def served_classes(self) -> list[str]:
        """The ``_cls`` names of every served Document class (what a generic reference may be set to), sorted."""
        ...


# ---------------------------------------------------------------- the table


_TABLE: dict[type[BaseField], FieldType] = {}
_FOUND: dict[type[BaseField], FieldType] = {}


def field_type(field: BaseField) -> FieldType:
    """The type object of ``field``: the one registered for the nearest class in its MRO."""
    cls = type(field)
    found = _FOUND.get(cls)
    if found is None:
        found = _FOUND[cls] = next(_TABLE[k] for k in cls.__mro__ if k in _TABLE)
    return found


def decoder(field: BaseField) -> Converter:
    """The stored-value -> JSON converter of ``field`` (never given ``None``)."""
    return field_type(field).decoder(field)


def parse_json(field: BaseField, value: Any) -> Any:
    """A JSON value as what MongoEngine expects to be assigned to ``field`` (``null`` stays ``None``)."""
    return None if value is None else field_type(field).parse_json(field, value)


def parse_query(field: BaseField, text: str) -> Any:
    """Query-string text as ``field`` (its element field, for a list) stores it; ``ValueError`` otherwise."""
    inner = item_field(field)
    return field_type(inner).parse_query(inner, text)


def query_schema(field: BaseField, in_list: bool) -> Schema | None:
    """The schema of a filter value :func:`parse_query` accepts; ``None`` when no value fits."""
    inner = item_field(field)
    found = field_type(inner)
    return None if found.value_kind(inner) is None else found.query_schema(inner, in_list)


class FieldType:
    """The rules for one kind of MongoEngine field. The defaults describe a field of no known type.

    Subclasses list the MongoEngine classes they stand for in ``classes``;
    subclasses of those classes get the same type unless one of them is listed too.
    """

    classes: ClassVar[Classes] = ()
    plain: ClassVar[bool] = False  # the stored value is its own JSON (for exactly ``classes``, not subclasses)
    query_kind: ClassVar[str | None] = None  # what a filter value is parsed as (see ``filters.value_kind``)
    sortable: ClassVar[bool] = True  # sortable unless ``sortable`` options list it: a scalar of one BSON type
    choices_are_values: ClassVar[bool] = True  # ``choices`` are the allowed values
    choices_in_schema: ClassVar[bool] = False  # the read and write schemas already apply ``choices``
    is_reference: ClassVar[bool] = False  # holds the id of one document of a known class (``?expand=``)
    generates_id: ClassVar[bool] = False  # as a primary key, given a value when a client sends none
    integer_id: ClassVar[bool] = False  # as a primary key, a body may give it as a JSON integer (``id_input``)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        instance = cls()
        for mongo_cls in cls.__dict__.get("classes", ()):
            _TABLE[mongo_cls] = instance
        _FOUND.clear()  # a type defined after some lookups may be nearer for their classes

    # ------------------------------------------------------------ reading (codec)

    def decoder(self, field: BaseField) -> Converter:
        """A converter from the stored (BSON) value to JSON, chosen once per field."""
        if self.plain and type(field) in self.classes:
            return self.stored
        return lambda v: jsonable(field.to_python(v))

    def stored(self, value: Any) -> Any:
        """A ``plain`` type's stored value as its JSON: itself when it has the field's JSON type, else Unreadable."""
        return jsonable(value)

    def missing(self, field: BaseField) -> Any:
        """What a field missing from a stored document reads as: a constant default, else ``null`` or empty."""
        default = field.default
        if callable(default):
            return self.empty()
        try:
            return jsonable(field.to_mongo(default)) if default is not None else None
        except (Unreadable, ValueError, TypeError):
            return None

    def empty(self) -> Any:
        """What a missing field whose default is callable reads as."""
        return None

    # ------------------------------------------------------------ writing (codec)

    def parse_json(self, field: BaseField, value: Any) -> Any:
        """A JSON value (not ``null``) as what MongoEngine assigns; ``ValueError`` with a message for the client.

        By default the value is stored as sent: :func:`free_form` bounds its depth and refuses operator keys.
        """
        return free_form(value)

    def parse_id(self, field: BaseField, text: str) -> Any:
        """A primary key of this type from its string form; ``ValueError`` when it cannot be one."""
        return text

    # ------------------------------------------------------------ filtering (filters)

    def parse_query(self, field: BaseField, text: str) -> Any:
        """Query-string text as the value MongoDB stores; ``ValueError`` when it does not parse."""
        raise ValueError(UNFILTERABLE)

    def value_kind(self, field: BaseField) -> str | None:
        return self.query_kind

    def operators(self, field: BaseField) -> frozenset[str]:
        """The filter operators that fit; only ``exists`` without a filterable value."""
        if self.query_kind == "string":
            return STRING
        return COMPARISON if self.query_kind else PRESENCE

    def is_sortable(self, field: BaseField) -> bool:
        return self.sortable

    # ------------------------------------------------------------ schemas (openapi)

    def read_schema(self, field: BaseField, components: Components) -> Schema:
        """The JSON a stored value reads as, ``null`` and ``choices`` aside."""
        return {}

    def write_schema(self, field: BaseField, components: Components, mode: str) -> Schema:
        """The JSON :meth:`parse_json` accepts (validation rules included), ``null`` and ``choices`` aside.

        ``mode`` ``"patch"`` gives embedded documents as partial objects (merge patch). By default, as read.
        """
        return self.read_schema(field, components)

    def query_schema(self, field: BaseField, in_list: bool) -> Schema | None:
        """A filter value's schema (``in_list``: one of comma-separated values); ``None``: none fits."""
        return None

    def text_rules(self, field: BaseField) -> Schema:
        """A text primary key's own rules (length, pattern) in its id schemas."""
        return {}

    def id_schema(self, field: BaseField) -> Schema:
        """A primary key as responses give it: ``str()`` of the stored value."""
        return {"type": "string"}

    def id_input(self, field: BaseField) -> Schema:
        """A primary key as bodies may give it (``parse_id(str(value))``), with the field's own rules."""
        return {"type": "string", **self.text_rules(field)}

    def path_id(self, field: BaseField) -> Schema:
        """The ``{id}`` path segment: what :meth:`parse_id` can parse (other text is a 404)."""
        schema: Schema = {"type": "string", "minLength": 1}
        schema.update(self.text_rules(field))
        schema["not"] = {"const": "_bulk"}  # /<name>/_bulk is the bulk endpoint
        return schema


class AnyType(FieldType):
    """A field of no known type (a custom field): read through its own ``to_python``, written as sent."""

    classes = (BaseField,)

    def is_sortable(self, field: BaseField) -> bool:
        return self.sortable and not isinstance(field, ComplexBaseField)  # a custom list or dict

    def write_schema(self, field: BaseField, components: Components, mode: str) -> Schema:
        """Any JSON, checked by :func:`free_form` (an object's own keys are in the schema; deeper ones described)."""
        schema = self.read_schema(field, components)
        return {**schema, "propertyNames": {"pattern": KEY_PATTERN}, "description": FREE_FORM}


class DynamicType(AnyType):
    classes = (mf.DynamicField,)
    sortable = False
