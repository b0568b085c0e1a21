"""The field-type table: one object per kind of MongoEngine field, knowing every rule the API has for it.

``field_type(field)`` gives a field's :class:`FieldType`: how its stored value
decodes to JSON (``codec``), how a JSON body value parses (``codec``,
``writes``), how query-string text parses and which filter operators fit
(``filters``), whether it sorts (``pagination``), and its OpenAPI read, write,
filter and id schemas (``openapi``). Supporting a new MongoEngine field type
is one :class:`FieldType` subclass naming it in ``classes``, in ``scalars``
or ``compound``.
"""

from restengine.api.fields import compound, scalars
from restengine.api.fields.base import (
    UNFILTERABLE,
    Components,
    Converter,
    FieldType,
    Schema,
    Unreadable,
    choices,
    decoder,
    ecma_pattern,
    field_type,
    format_datetime,
    jsonable,
    nullable,
    object_id,
    parse_bool,
    parse_datetime,
    parse_int,
    parse_json,
    parse_query,
    plain_json,
    query_schema,
    ref,
)
from restengine.api.fields.compound import (
    build_embedded,
    decode_embedded,
    input_values,
    pk_value,
    plan,
    stored_class,
)

__all__ = [
    "UNFILTERABLE",
    "Components",
    "Converter",
    "FieldType",
    "Schema",
    "Unreadable",
    "build_embedded",
    "choices",
    "compound",
    "decode_embedded",
    "decoder",
    "ecma_pattern",
    "field_type",
    "format_datetime",
    "input_values",
    "jsonable",
    "nullable",
    "object_id",
    "parse_bool",
    "parse_datetime",
    "parse_int",
    "parse_json",
    "parse_query",
    "pk_value",
    "plain_json",
    "plan",
    "query_schema",
    "ref",
    "scalars",
    "stored_class",
]
