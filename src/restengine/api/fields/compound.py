"""Field types holding other values: lists, maps, dicts, embedded documents and references.

Embedded documents are decoded and built field by field through the table, so
the per-class plans (:func:`plan`) and the object-level conversions
(:func:`decode_embedded`, :func:`input_values`) live here too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ClassVar

import mongoengine
from bson import DBRef
from mongoengine import fields as mf
from mongoengine.base import BaseField, get_document

from restengine.api.fields.base import (
    FREE_FORM,
    KEY_PATTERN,
    UNFILTERABLE,
    Classes,
    Components,
    Converter,
    FieldType,
    Schema,
    check_key,
    choices,
    decoder,
    expect,
    field_type,
    free_form,
    jsonable,
    nullable,
    parse_json,
    parse_query,
    query_schema,
    ref,
    ref_id,
    wrong_type,
)
from restengine.api.model import item_field, pk_field, pk_name
from restengine.api.operators import LIST, LIST_PRESENCE, TEXT_OPERATORS
from restengine.errors import InputError

# ---------------------------------------------------------------- lists, maps, dicts


class ListType(FieldType):
    """A list; filters match its elements (nested lists unwrapped), with the element type's value."""

    classes = (mf.ListField,)
    sortable = False
    choices_in_schema = True  # MongoEngine checks a list's choices on every element

    def empty(self) -> Any:
        return []

    def decoder(self, field: BaseField) -> Converter:
        inner = decoder(field.field) if field.field is not None else jsonable
        return lambda v: (
            [None if x is None else inner(x) for x in v] if isinstance(v, list) else wrong_type(v, "a list")
        )

    def parse_json(self, field: BaseField, value: Any) -> Any:
        expect(list, value, "a list")
        if any(v is None for v in value):
            raise ValueError("list items must not be null")
        inner = field.field
        if inner is None:  # free-form items: the list is the first level
            return [free_form(v, 1) for v in value]
        return [parse_json(inner, v) for v in value]

    def operators(self, field: BaseField) -> frozenset[str]:
        kind = field_type(item_field(field)).query_kind
        listed = LIST if kind else LIST_PRESENCE
        return listed | TEXT_OPERATORS if kind == "string" else listed

    def read_schema(self, field: BaseField, components: Components) -> Schema:
        items = components.read(field.field) if field.field is not None else {}
        found = choices(field)
        if found is not None:
            items = {**items, "enum": found}
        return _sized({"type": "array", "items": nullable(items)}, field)

    def write_schema(self, field: BaseField, components: Components, mode: str) -> Schema:
        # parse_json refuses null items
        if field.field is None:
            items: Schema = {"not": {"type": "null"}, "propertyNames": {"pattern": KEY_PATTERN}}
        else:
            items = components.write(field.field)
        schema = _sized({"type": "array", "items": items}, field)
        if field.field is None:
            schema["description"] = FREE_FORM
        if field.required:
            schema["minItems"] = max(1, schema.get("minItems", 0))
        found = choices(field)
        if found is not None:
            schema["items"] = {**schema["items"], "enum": found}
        return schema


def _sized(schema: Schema, field: BaseField) -> Schema:
    max_length = getattr(field, "max_length", None)
    if max_length is not None:
        schema["maxItems"] = max_length
    return schema


class DictType(FieldType):
    """Any JSON object, stored as sent (with a ``field``, its values have that field's type)."""

    classes = (mf.DictField,)
    plain = True
    sortable = False

    def empty(self) -> Any:
        return {}

    def stored(self, value: Any) -> Any:
        return jsonable(value) if isinstance(value, dict) else wrong_type(value, "an object")

    def parse_json(self, field: BaseField, value: Any) -> Any:
        expect(dict, value, "an object")
        inner = field.field
        if inner is None:
            return free_form(value)
        return {check_key(k): parse_json(inner, v) for k, v in value.items()}

    def read_schema(self, field: BaseField, components: Components) -> Schema:
        return {"type": "object"}

    def write_schema(self, field: BaseField, components: Components, mode: str) -> Schema:
        schema: Schema = {"type": "object", "propertyNames": {"pattern": KEY_PATTERN}}
        if field.field is None:
            schema["description"] = FREE_FORM
        else:
            schema["additionalProperties"] = components.write(field.field)
        return schema


class MapType(DictType):
    """An object whose values all have one field's type."""

    classes = (mf.MapField,)

    def decoder(self, field: BaseField) -> Converter:
        inner = decoder(field.field)
        return lambda v: (
            {k: None if x is None else inner(x) for k, x in v.items()}
            if isinstance(v, dict)
            else wrong_type(v, "an object")
        )

    def read_schema(self, field: BaseField, components: Components) -> Schema:
        return {"type": "object", "additionalProperties": nullable(components.read(field.field))}


# ---------------------------------------------------------------- embedded documents


class EmbeddedType(FieldType):
    """An EmbeddedDocument of the declared class (a subclass by ``_cls`` when reading)."""

    classes = (mf.EmbeddedDocumentField,)
    sortable = False

    def decoder(self, field: BaseField) -> Converter:
        embedded = field.document_type
        return lambda v: decode_embedded(embedded, v)

    def parse_json(self, field: BaseField, value: Any) -> Any:
        """The declared class, or the subclass a ``_cls`` names (so a polymorphic value keeps its class)."""
        expect(dict, value, "an object")
        return build_embedded(_declared_or_subclass(field.document_type, value.get("_cls")), value)

    def read_schema(self, field: BaseField, components: Components) -> Schema:
        return ref(components.embedded(field.document_type, "read"))

    def write_schema(self, field: BaseField, components: Components, mode: str) -> Schema:
        return ref(components.embedded(field.document_type, "patch" if mode == "patch" else "write"))


class GenericEmbeddedType(FieldType):
    """An EmbeddedDocument of any (or any listed) class, named by its ``_cls``."""

    classes = (mf.GenericEmbeddedDocumentField,)
    sortable = False

    def decoder(self, field: BaseField) -> Converter:
        return lambda v: decode_embedded(_named_class(v), v) if isinstance(v, dict) else wrong_type(v, "an object")

    def parse_json(self, field: BaseField, value: Any) -> Any:
        expect(dict, value, "an object with _cls")
        return build_embedded(_named_class(value), value)

    def read_schema(self, field: BaseField, components: Components) -> Schema:
        return self._variants(field, components, "read")

    def write_schema(self, field: BaseField, components: Components, mode: str) -> Schema:
        return self._variants(field, components, "write")

    def _variants(self, field: BaseField, components: Components, mode: str) -> Schema:
        classes = [get_document(c) if isinstance(c, str) else c for c in (field.choices or ())]
        if not classes:
            return {"type": "object", "properties": {"_cls": {"type": "string"}}, "required": ["_cls"]}
        return {"oneOf": [ref(components.embedded(cls, mode, generic=True)) for cls in classes]}


def _declared_or_subclass(declared: type[Any], name: Any) -> type[Any]:
    """The class an embedded object's ``_cls`` names (absent or ``null``: ``declared``); ``ValueError`` unless it is
    ``declared`` or one of its subclasses."""
    if name is None or name == declared._class_name:
        return declared
    if isinstance(name, str) and name in declared._subclasses:
        found: type[Any] = get_document(name)
        return found
    raise InputError({"_cls": f"must be one of {list(declared._subclasses)}"})


def _named_class(value: Mapping[str, Any]) -> Any:
    """The document class a JSON object's ``_cls`` names; ``ValueError`` for an unknown one."""
    try:
        return get_document(str(value.get("_cls")))
    except mongoengine.errors.NotRegistered:
        raise ValueError(f"unknown document class {value.get('_cls')!r}") from None


# ---------------------------------------------------------------- references

NOT_SERVED = "cannot refer to documents this API does not serve"

# Which Document classes a body being parsed may refer to: set by ``input_values(served=...)``
# for the whole (nested) parse; ``None`` outside one: every class.
_served: ContextVar[Callable[[type[Any]], bool] | None] = ContextVar("restengine_served", default=None)


@contextmanager
def _referring(served: Callable[[type[Any]], bool] | None) -> Iterator[None]:
    if served is None:  # a nested parse keeps the outer rule
        yield
        return
    token = _served.set(served)
    try:
        yield
    finally:
        _served.reset(token)


def _check_served(target: type[Any]) -> None:
    """Refuse a reference to a class the API does not serve, before looking at its id: one answer for any id."""
    served = _served.get()
    if served is not None and not served(target):
        raise ValueError(NOT_SERVED)


class ReferenceType(FieldType):
    """The referenced document's id: a string when read; ``?expand=`` makes it the referenced item."""

    classes: ClassVar[Classes] = (mf.ReferenceField, mf.LazyReferenceField)
    query_kind: ClassVar[str | None] = "reference"  # the referenced primary key's kind
    is_reference = True

    def decoder(self, field: BaseField) -> Converter:
        """The id as text, once the target's primary key type reads it (an id of another type is unreadable)."""
        target = field.document_type
        if target._meta.get("abstract"):
            return ref_id
        check = decoder(pk_field(target))

        def decode(value: Any) -> Any:
            stored = value.id if isinstance(value, DBRef) else value
            if isinstance(stored, dict) and "_id" in stored:  # CachedReferenceField
                stored = stored["_id"]
            if stored is not None:
                check(stored)
            return ref_id(value)

        return decode

    def parse_json(self, field: BaseField, value: Any) -> Any:
        """A DBRef, not checked here (``writes`` checks that the documents exist).

        Only to a served class: any id of an unserved one is refused the same way.
        """
        target = field.document_type
        _check_served(target)
        return DBRef(target._get_collection_name(), pk_value(target, value))

    def parse_query(self, field: BaseField, text: str) -> Any:
        target = field.document_type
        if target._meta.get("abstract"):  # stored as DBRef(..., cls=...) whose collection varies
            raise ValueError(UNFILTERABLE)
        value = parse_query(pk_field(target), text)
        return DBRef(target._get_collection_name(), value) if field.dbref else value

    def value_kind(self, field: BaseField) -> str | None:
        return None if field.document_type._meta.get("abstract") else self.query_kind

    def query_schema(self, field: BaseField, in_list: bool) -> Schema | None:
        return query_schema(pk_field(field.document_type), in_list)

    def read_schema(self, field: BaseField, components: Components) -> Schema:
        schema = self._target_id(field, components, read=True)
        item = components.item_component(field.document_type)
        return schema if item is None else {"anyOf": [schema, ref(item)]}

    def write_schema(self, field: BaseField, components: Components, mode: str) -> Schema:
        if components.reference_label(field.document_type) is None:
            return {"not": {}, "description": "Cannot be set: it refers to documents this API does not serve."}
        return self._target_id(field, components, read=False)

    def _target_id(self, field: BaseField, components: Components, *, read: bool) -> Schema:
        """The referenced primary key's id schema (as read or as sent), labelled with the target's resource.

        A class no resource serves is neither named nor described: only its ids are read.
        """
        target = field.document_type
        key = pk_field(target)
        schema = field_type(key).id_schema(key) if read else field_type(key).id_input(key)
        label = components.reference_label(target)
        if label is None:
            schema["description"] = "The id of the referenced document (not served by this API)."
            return schema
        schema["x-reference"] = label
        what = "the referenced" if read else "an existing"
        schema["description"] = f"The id of {what} {target.__name__} (`{label}`)."
        return schema


class CachedReferenceType(ReferenceType):
    """Stored as a copy of some of the referenced document's fields: no filter value."""

    classes = (mf.CachedReferenceField,)
    query_kind = None
    sortable = False  # a document: a cursor cannot carry it
    parse_query = FieldType.parse_query
    value_kind = FieldType.value_kind


class GenericReferenceType(FieldType):
    """A reference to a document of any class: ``{"_cls": ..., "id": ...}``."""

    classes = (mf.GenericReferenceField,)
    sortable = False
    choices_in_schema = True  # ``choices`` are class names: they limit ``_cls``, not the object

    def decoder(self, field: BaseField) -> Converter:
        return _generic_ref

    def parse_json(self, field: BaseField, value: Any) -> Any:
        expect(dict, value, 'an object {"_cls": ..., "id": ...}')
        target = _referable_class(value)
        found = DBRef(target._get_collection_name(), pk_value(target, value.get("id")))
        return {"_cls": target._class_name, "_ref": found}  # MongoEngine's stored form

    def read_schema(self, field: BaseField, components: Components) -> Schema:
        return _generic_reference(field, components, read=True)

    def write_schema(self, field: BaseField, components: Components, mode: str) -> Schema:
        return _generic_reference(field, components, read=False)


def _referable_class(value: Mapping[str, Any]) -> Any:
    """The Document class a generic reference names: an unknown class and an unserved one get one answer."""
    name = value.get("_cls")
    try:
        target = get_document(str(name))
    except mongoengine.errors.NotRegistered:
        target = None
    served = _served.get()
    if (
        target is None
        or not issubclass(target, mongoengine.Document)
        or target._meta.get("abstract")
        or (served is not None and not served(target))
    ):
        raise ValueError(f"{name!r} is not a class this API serves")
    return target


def _generic_ref(value: Any) -> Any:
    if not isinstance(value, dict):
        return wrong_type(value, 'an object {"_cls": ..., "_ref": ...}')
    stored = value.get("_ref")
    return {"_cls": value.get("_cls"), "id": None if stored is None else str(getattr(stored, "id", stored))}


def _integer_key(name: str) -> bool:
    """Whether the Document class named ``name`` has an integer primary key (a body may send it as a number)."""
    key = pk_field(get_document(name))
    return field_type(key).integer_id


def _generic_reference(field: BaseField, components: Components, *, read: bool) -> Schema:
    """``{"_cls": ..., "id": ...}``: a stored one may name any class (of ``choices``); a written one a served class."""
    choices = [c if isinstance(c, str) else c._class_name for c in (field.choices or ())]
    served = components.served_classes()
    cls_schema: Schema
    if read:  # the names of unserved classes are not listed
        cls_schema = {"enum": choices} if choices and set(choices) <= set(served) else {"type": "string"}
    else:
        cls_schema = {"enum": [c for c in choices if c in served] if choices else served}
    id_schema: Schema = {"type": "string"}
    if not read and any(_integer_key(name) for name in cls_schema["enum"]):
        id_schema = {"type": ["string", "integer"]}  # pk_value: a JSON integer only for an integer key
    what = "of any class" if read else "of a class this API serves"
    return {
        "type": "object",
        "description": f"A reference to a document {what}: its class name and id.",
        "properties": {
            "_cls": nullable(cls_schema) if read else cls_schema,
            "id": nullable(id_schema) if read else id_schema,
        },
        "required": ["_cls", "id"],
        "additionalProperties": not read,
    }


# ---------------------------------------------------------------- documents, field by field


def pk_value(doc_cls: type[Any], value: Any) -> Any:
    """A primary key from its string form (or a JSON integer, for an integer key); ``ValueError`` otherwise.

    A URL gives text; a body's ``id`` must be a JSON string, or an integer when the key is one
    (never ``true``, an object or a list turned into text).
    """
    key = pk_field(doc_cls)
    found = field_type(key)
    if isinstance(value, int) and not isinstance(value, bool) and found.integer_id:
        value = str(value)
    if not isinstance(value, str):
        raise ValueError("must be a string" + (" or an integer" if found.integer_id else ""))
    return found.parse_id(key, value)


Plan = tuple[tuple[str, str, Converter, Any], ...]
_plans: dict[type[Any], Plan] = {}


def plan(doc_cls: type[Any]) -> Plan:
    """(attribute, db_field, converter, missing value) for every field but the pk and _cls; built once a class."""
    found = _plans.get(doc_cls)
    if found is None:
        pk = pk_name(doc_cls) if issubclass(doc_cls, mongoengine.Document) else None
        found = _plans[doc_cls] = tuple(
            (name, field.db_field, decoder(field), field_type(field).missing(field))
            for name, field in ((n, doc_cls._fields[n]) for n in doc_cls._fields_ordered)
            if name not in (pk, "_cls")
        )
    return found


def decode_embedded(doc_cls: type[Any], raw: Any) -> Any:
    """A stored embedded document as JSON; :class:`~restengine.api.fields.base.Unreadable` when it is not one.

    A stored ``_cls`` naming a subclass of ``doc_cls`` decodes with that class (and is shown).
    """
    if not isinstance(raw, dict):
        return wrong_type(raw, "an object")
    if "_cls" in raw and raw["_cls"] != doc_cls._class_name:
        doc_cls = stored_class(doc_cls, raw["_cls"])
    out: dict[str, Any] = {"_cls": raw["_cls"]} if "_cls" in raw else {}
    for name, db_field, convert, missing in plan(doc_cls):
        value = raw.get(db_field)
        out[name] = missing if value is None and db_field not in raw else None if value is None else convert(value)
    return out


def stored_class(declared: type[Any], name: Any) -> type[Any]:
    """The class a stored ``_cls`` names: ``declared`` or one of its subclasses, else :class:`Unreadable`."""
    if name == declared._class_name:
        return declared
    if isinstance(name, str) and name in declared._subclasses:
        try:
            found: type[Any] = get_document(name)
        except mongoengine.errors.NotRegistered:
            pass
        else:
            return found
    return wrong_type(name, f"the name of {declared.__name__} or of one of its subclasses (_cls)")


def build_embedded(doc_cls: type[Any], body: Mapping[str, Any]) -> Any:
    """An EmbeddedDocument from a JSON object; unknown keys are errors."""
    values, errors = input_values(doc_cls, body, writable=None)
    if errors:
        raise InputError(errors)
    return doc_cls(**values)


def input_values(
    doc_cls: type[Any],
    body: Mapping[str, Any],
    writable: frozenset[str] | None,
    served: Callable[[type[Any]], bool] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Convert a JSON object's members to field values: (values, errors by field name).

    ``writable`` limits which attribute names a client may set (``None``: all but the pk).
    ``served`` tells which Document classes references (nested ones too) may point to;
    ``None``: the rule of an enclosing parse, else any class.
    ``_cls`` is accepted and ignored (the class is chosen by the URL).
    """
    with _referring(served):
        return _input_values(doc_cls, body, writable)


def _input_values(
    doc_cls: type[Any], body: Mapping[str, Any], writable: frozenset[str] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
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
            values[name] = parse_json(fields[name], value)
        except InputError as exc:
            errors[name] = exc.errors
        except (ValueError, TypeError) as exc:
            errors[name] = str(exc) or "invalid value"
    return values, errors
