"""The document's named schemas: fields (from the field-type table), embedded documents, items and bodies.

Reads and writes have separate schemas. A read schema allows ``null`` for
every field (a field missing from a stored document reads as ``null``) and
requires only ``id`` (and ``_cls``): ``?fields=`` leaves the others out. A
create schema requires what the Document requires and refuses unknown and
read-only fields; a replace (``PUT``) schema also allows the read-only fields,
which may be repeated unchanged; a merge patch allows ``null`` everywhere
(``null`` removes a member, resetting the field to its default).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import orjson
from mongoengine.base import BaseField, get_document

from restengine.api.fields import Schema, choices, decoder, field_type, nullable, plain_json, ref
from restengine.api.fields.base import ANNOTATIONS
from restengine.api.model import item_field, public_fields
from restengine.api.resource import Resource

UNREADABLE = "_unreadable"  # codec.UNREADABLE
UNREADABLE_SCHEMA: Schema = {
    "type": "array",
    "items": {"type": "string"},
    "minItems": 1,
    "uniqueItems": True,
    "readOnly": True,
    "description": (
        "Present only when some stored values cannot be read as their fields' JSON (legacy data of another type,"
        " a value JSON cannot hold, nested too deeply): their paths, dotted, with list positions and map keys"
        " (`lines.1.quantity`), sorted. Each of them reads as `null`. A write that leaves them out or repeats"
        " the null keeps the stored value; a write that sets one replaces it."
    ),
}
UNREADABLE_INPUT: Schema = {**UNREADABLE_SCHEMA, "description": "Ignored: the `_unreadable` list of a read item."}

if TYPE_CHECKING:
    from restengine.api.registry import Api


def doc_text(cls: type[Any]) -> str | None:
    """The first paragraph of a class's own docstring, on one line."""
    text = cls.__dict__.get("__doc__")
    return " ".join(text.split("\n\n")[0].split()) if isinstance(text, str) and text.strip() else None


def class_names(cls: type[Any]) -> list[type[Any]]:
    """``cls`` and every subclass sharing its collection, as MongoEngine resolves their ``_cls``."""
    return [cls] + [get_document(n) for n in cls._subclasses if n != cls._class_name]


def _is_auto_pk(field: BaseField) -> bool:
    """Whether a new document gets its primary key without the client sending one."""
    return field_type(field).generates_id or field.default is not None


def _required(field: BaseField) -> bool:
    """Whether a create must give the field a value (``null`` counts as none; a default fills it)."""
    return bool(field.required) and field.default is None and not getattr(field, "_auto_gen", False)


def _add_default(schema: Schema, field: BaseField) -> None:
    default = field.default
    if default is None or callable(default):
        return
    try:
        value = plain_json(decoder(field)(field.to_mongo(default)))
    except Exception:  # a default the codec cannot render: say nothing
        return
    if value is not ...:
        schema["default"] = value


class Schemas:
    """The named schemas (``components.schemas``) of one document being built, and the field schemas.

    Implements :class:`restengine.api.fields.Components` for the field types.
    """

    def __init__(self, api: Api) -> None:
        self.api = api
        self.schemas: dict[str, Schema] = {}
        self._names: dict[Any, str] = {}
        self._taken: set[str] = {"Problem"}

    # ------------------------------------------------------------ component names

    def name(self, key: Any, preferred: str) -> tuple[str, bool]:
        """The component name for ``key``, and whether it is new (to be built now)."""
        if key in self._names:
            return self._names[key], False
        base = re.sub(r"[^A-Za-z0-9._-]", "_", preferred) or "Schema"
        name, n = base, 1
        while name in self._taken:
            n += 1
            name = f"{base}{n}"
        self._taken.add(name)
        self._names[key] = name
        self.schemas[name] = {}  # placeholder: recursive structures refer to it while it is built
        return name, True

    def resource_name(self, resource: Resource) -> str:
        return self.name(("resource", resource.name), resource.doc_cls.__name__)[0]

    # ------------------------------------------------------------ field schemas

    def read(self, field: BaseField) -> Schema:
        """The JSON a stored value of ``field`` reads as (the field type's decoder), ``null`` aside."""
        kind = field_type(field)
        schema = kind.read_schema(field, self)
        found = choices(field)
        if found is not None and not kind.choices_in_schema:
            schema["enum"] = found
        return self._named_enum(field, schema)

    def write(self, field: BaseField, mode: str = "create") -> Schema:
        """The JSON the field type's ``parse_json`` accepts (validation rules included), ``null`` aside.

        ``mode`` ``"patch"`` gives embedded documents as partial objects (merge patch).
        """
        kind = field_type(field)
        schema = kind.write_schema(field, self, mode)
        found = choices(field)
        if found is not None and not kind.choices_in_schema:
            schema["enum"] = found
        return self._named_enum(field, schema)

    def _named_enum(self, field: BaseField, schema: Schema) -> Schema:
        """An enum of plain values as one named component, shared by every schema using the same values.

        Reads, creates, replaces and patches of a field then refer to one schema, so generators make
        one enum type of it (not one per model and per alternative); ``null`` is added beside the
        reference by :func:`nullable`. The name is the Enum class's, else the owner class's and the field's.
        """
        values = schema.get("enum")
        plain = isinstance(values, list) and values and all(isinstance(v, (str, int)) for v in values)
        if not plain or not isinstance(schema.get("type", "string"), str):
            return schema
        enum_cls = getattr(field, "_enum_cls", None)
        if enum_cls is not None:
            preferred = enum_cls.__name__
        else:
            owner = getattr(field, "owner_document", None)
            words = (field.name or "value").split("_")
            preferred = (owner.__name__ if owner else "") + "".join(w[:1].upper() + w[1:] for w in words)
        if preferred in self._class_names():
            preferred += "Enum"  # never take the name a document's own schema is to have
        component = {key: value for key, value in schema.items() if key not in ANNOTATIONS}
        name, new = self.name(("enum", preferred, orjson.dumps(component, option=orjson.OPT_SORT_KEYS)), preferred)
        if new:
            self.schemas[name] = component
        notes = {key: value for key, value in schema.items() if key in ANNOTATIONS}
        return {**ref(name), **notes}

    # ------------------------------------------------------------ references: only to served classes

    def reference_label(self, target: type[Any]) -> str | None:
        resource = self.api.resource_for(target)
        return None if resource is None else resource.name

    def item_component(self, target: type[Any]) -> str | None:
        resource = self.api.resource_for(target)
        return None if resource is None else self.read_component(resource)

    def _class_names(self) -> set[str]:
        """The Python names of the served classes and their subclasses (the names of their schemas)."""
        return {cls.__name__ for resource in self.api.resources.values() for cls in class_names(resource.doc_cls)}

    def served_classes(self) -> list[str]:
        names = {
            cls._class_name
            for resource in self.api.resources.values()
            for cls in (class_names(resource.doc_cls) if resource.with_cls else [resource.doc_cls])
        }
        return sorted(names)

    def read_property(self, field: BaseField) -> Schema:
        """A field as read: its value, ``null``, or (for a missing field) what the codec reads instead."""
        schema = nullable(self.read(field))
        missing = field_type(field).missing(field)
        if missing is not None and field.default is not None and not callable(field.default):
            try:
                proper = decoder(field)(field.to_mongo(field.default))
            except Exception:  # a default the field cannot even store: describe what is read
                proper = ...
            if plain_json(missing) != plain_json(proper):
                # the codec reads a missing field as the raw default, not as its stored form would read
                schema = {"anyOf": [schema, {"const": plain_json(missing)}]}
        return schema

    # ------------------------------------------------------------ embedded documents

    def embedded(self, cls: type[Any], mode: str, generic: bool = False) -> str:
        """The component for an EmbeddedDocument class: ``read``, ``write`` (whole) or ``patch`` (partial).

        ``generic``: as a GenericEmbeddedDocumentField holds it, ``_cls`` always present.
        """
        suffix = {"read": "", "write": "Input", "patch": "Patch"}[mode] + ("WithCls" if generic else "")
        name, new = self.name(("embedded", cls, mode, generic), cls.__name__ + suffix)
        if not new:
            return name
        inheriting = bool(cls._meta.get("allow_inheritance"))
        if mode == "read" and (generic or inheriting):
            variants = [self._embedded_object(k, mode, cls_const=k._class_name) for k in class_names(cls)]
            schema = variants[0] if len(variants) == 1 else {"oneOf": variants}
        elif inheriting and not generic and len(class_names(cls)) > 1:
            # Writing builds the class ``_cls`` names: the declared one (``_cls`` optional) or a subclass.
            variants = [self._embedded_object(k, mode, cls_const=k._class_name) for k in class_names(cls)]
            variants[0]["properties"]["_cls"]["description"] = "Optional for the declared class."
            for variant in variants if mode == "patch" else variants[:1]:  # a merge patch keeps the stored _cls
                variant["required"] = [n for n in variant["required"] if n != "_cls"]
                if not variant["required"]:
                    del variant["required"]
            schema = {"anyOf": variants}
        else:
            # Writing an EmbeddedDocumentField builds the declared class; ``_cls`` may only name it.
            schema = self._embedded_object(cls, mode, cls_const=cls._class_name if generic else None)
        if doc_text(cls):
            schema = {**schema, "description": doc_text(cls)}
        self.schemas[name] = schema
        return name

    def _embedded_object(self, cls: type[Any], mode: str, cls_const: str | None) -> Schema:
        properties: Schema = {}
        required: list[str] = []
        if cls_const is not None:
            properties["_cls"] = {"const": cls_const}
            required.append("_cls")
        elif mode != "read":
            properties["_cls"] = {"const": cls._class_name, "description": "Optional: the declared class is built."}
        for name in cls._fields_ordered:
            field = cls._fields[name]
            if name == "_cls" or (mode != "read" and name.startswith("_")):
                continue
            if mode == "read":
                properties[name] = self.read_property(field)
                required.append(name)  # decode_embedded writes every field
            elif mode == "patch":
                properties[name] = nullable(self.write(field, "patch"))
            else:
                self._writable_property(properties, required, name, field)
        schema: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
        if required:
            schema["required"] = required
        return schema

    def _writable_property(self, properties: Schema, required: list[str], name: str, field: BaseField) -> None:
        """A field a create (or replace) sets: required unless it has a default; ``null`` allowed if not required."""
        needed = _required(field)
        properties[name] = self.write(field) if needed else nullable(self.write(field))
        _add_default(properties[name], field)
        if needed:
            required.append(name)

    # ------------------------------------------------------------ documents

    def read_component(self, resource: Resource) -> str:
        """The component of ``resource``'s items as responses hold them."""
        name = self.resource_name(resource)
        if self.schemas[name]:
            return name
        self.schemas[name] = {"type": "object"}  # placeholder against recursion
        classes = class_names(resource.doc_cls) if resource.with_cls else [resource.doc_cls]
        if len(classes) == 1:
            schema = self._document_object(resource, classes[0], "read")
        else:
            variants: dict[str, str] = {}
            for cls in classes:
                variant, _ = self.name(("variant", name, cls), f"{name}.{cls.__name__}")
                self.schemas[variant] = self._document_object(resource, cls, "read")
                variants[cls._class_name] = variant
            schema = {
                "oneOf": [ref(v) for v in variants.values()],
                "discriminator": {
                    "propertyName": "_cls",
                    "mapping": {k: f"#/components/schemas/{v}" for k, v in variants.items()},
                },
            }
        description = doc_text(resource.doc_cls)
        if description:
            schema["description"] = description
        self.schemas[name] = schema
        return name

    def write_component(self, resource: Resource, mode: str) -> str:
        """``Create`` (POST), ``Replace`` (PUT) or ``Patch`` (merge patch) body of ``resource``."""
        base = self.resource_name(resource)
        name, new = self.name((mode, resource.name), base + mode.capitalize())
        if not new:
            return name
        classes = class_names(resource.doc_cls) if resource.with_cls else [resource.doc_cls]
        variants = [self._document_object(resource, cls, mode) for cls in classes]
        if len(variants) == 1:
            schema = variants[0]
        elif mode == "create":
            schema = {"oneOf": variants}  # ``_cls`` picks the class; without it, the resource's own
        else:
            schema = {"anyOf": variants}  # the stored document's class decides; ``_cls`` may repeat it
        self.schemas[name] = schema
        return name

    def _document_object(self, resource: Resource, cls: type[Any], mode: str) -> Schema:
        pk = resource.pk
        properties: Schema = {}
        required: list[str] = []
        pk_field = cls._fields[pk]
        pk_type = field_type(pk_field)
        if mode == "read":
            properties["id"] = pk_type.id_schema(pk_field)
            required.append("id")
        else:
            if mode == "create":
                id_schema = pk_type.id_input(pk_field)
                auto = _is_auto_pk(pk_field)
                id_schema["description"] = "The primary key" + ("; optional, generated when left out." if auto else ".")
            else:  # the current id, as read: it may be repeated, not changed
                id_schema = {
                    **pk_type.id_schema(pk_field),
                    "description": "The primary key; may be repeated, not changed.",
                }
            properties["id"] = id_schema
            if pk != "id":
                properties[pk] = {**id_schema, "description": "The primary key under its own name (same as id)."}
        properties.update(self._cls_property(resource, cls, mode, required))
        # a subclass served on its own keeps its resource's hidden and read-only fields here too
        hidden, writable = resource.hidden_for(cls._class_name), resource.writable_for(cls)
        if mode != "create":
            properties[UNREADABLE] = UNREADABLE_SCHEMA if mode == "read" else UNREADABLE_INPUT
        for name in public_fields(cls):
            if name == pk or name not in resource.exposed or name in hidden:
                continue
            field = cls._fields[name]
            if mode == "read":
                properties[name] = self.read_property(field)
                if name in resource.options.read_only:
                    properties[name] = {**properties[name], "readOnly": True}
            elif name not in writable:
                if mode != "create":  # may be sent back unchanged
                    repeat = self.read_property(field)
                    properties[name] = {**repeat, "readOnly": True, "description": "Read-only: may repeat the value."}
            elif mode != "create" and self._unserved_reference(field):
                # only its value changes are parsed (and refused): the stored one may be repeated, or removed
                properties[name] = {
                    **self.read_property(field),
                    "description": "May repeat its value or be null: it refers to documents this API does not serve.",
                }
                if mode == "replace" and _required(field):
                    required.append(name)
            elif mode == "patch":
                properties[name] = nullable(self.write(field, "patch"))
            else:
                self._writable_property(properties, required, name, field)
        if mode == "patch":  # null removes a member: allowed for every one
            properties = {name: nullable(value) for name, value in properties.items()}
        schema: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
        if required:
            schema["required"] = required
        if mode == "create" and not _is_auto_pk(pk_field):
            schema["anyOf"] = [{"required": ["id"]}] + ([{"required": [pk]}] if pk != "id" else [])
        return schema

    def _unserved_reference(self, field: BaseField) -> bool:
        """Whether ``field`` (or its list's elements) refers to a class no resource serves."""
        inner = item_field(field)
        return field_type(inner).is_reference and self.reference_label(inner.document_type) is None

    def _cls_property(self, resource: Resource, cls: type[Any], mode: str, required: list[str]) -> Schema:
        """The ``_cls`` member of a document object, if it has one (added to ``required`` when required)."""
        if resource.with_cls:
            if mode == "read" or (mode == "create" and cls is not resource.doc_cls):
                required.append("_cls")
                return {"_cls": {"const": cls._class_name}}
            if mode == "create":
                return {
                    "_cls": {
                        "anyOf": [{"const": cls._class_name}, {"type": "null"}],
                        "description": "The class; optional (null or absent: this one).",
                    }
                }
            return {"_cls": {"const": cls._class_name, "description": "The class; cannot be changed."}}
        if mode == "create":
            return {
                "_cls": {
                    "anyOf": [{"const": cls._class_name}, {"type": "null"}],
                    "description": "Optional: the class name, if given.",
                }
            }
        return {}
