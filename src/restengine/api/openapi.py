"""The OpenAPI 3.1 document of an :class:`~restengine.api.Api`, generated from its registrations.

Nothing here is declared beside the code it describes: schemas come from the
MongoEngine fields and the codec's rules (``codec.decode_document`` for what
responses hold, ``codec.input_value`` and ``writes`` for what bodies may hold),
query parameters from the same checks the views run (``filters.filter_parameter``,
``pagination.parse_sort``, ``reads.parse_expand``), and each operation lists
every status its view can answer with.

Reads and writes have separate schemas. A read schema allows ``null`` for
every field (a field missing from a stored document reads as ``null``) and
requires only ``id`` (and ``_cls``): ``?fields=`` leaves the others out. A
create schema requires what the Document requires and refuses unknown and
read-only fields; a replace (``PUT``) schema also allows the read-only fields,
which may be repeated unchanged; a merge patch allows ``null`` everywhere
(``null`` removes a member, resetting the field to its default).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import mongoengine
import orjson
from flask import Response, request, url_for
from mongoengine import fields as mf
from mongoengine.base import BaseField, get_document
from werkzeug.routing import BuildError

from restengine import __version__
from restengine.api import codec, filters, pagination, reads
from restengine.api.conditional import etag_of, none_match
from restengine.api.model import embedded_type, pk_name, public_fields
from restengine.api.options import ALL_OPERATORS
from restengine.api.resource import Resource
from restengine.api.writes import BULK_METHODS
from restengine.constants import JSON, MERGE_PATCH, PROBLEM_JSON, RESERVED_PARAMETERS
from restengine.errors import InvalidParameter

if TYPE_CHECKING:
    from restengine.api.registry import Api

Schema = dict[str, Any]

OPENAPI = "3.1.0"
DIALECT = "https://spec.openapis.org/oas/3.1/dialect/base"
INT64 = 2**63
OBJECT_ID = "^[0-9a-f]{24}$"
OBJECT_ID_INPUT = "^[0-9a-fA-F]{24}$"
BASE64 = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
DECIMAL = "^-?[0-9]+(?:\\.[0-9]+)?$"
DECIMAL_INPUT = "^[+-]?(?:[0-9]+(?:\\.[0-9]*)?|\\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
NO_NUL = "^[^\\u0000]*$"
LIST_ITEM = "^[^,\\u0000]+$"  # ``in``/``nin``/``all`` split on commas
ETAG = '^"[0-9a-f]{32}"$'
MAX_DEPTH = 4  # embedded documents followed this deep for filter and sort paths
REFERENCES = (mf.ReferenceField, mf.LazyReferenceField, mf.CachedReferenceField)
GENERIC_REFERENCES = (mf.GenericReferenceField, mf.GenericLazyReferenceField)


@dataclasses.dataclass(frozen=True)
class Mount:
    """Where things are served, as paths below ``server`` (the server URL, relative by default).

    ``api``: the resources' prefix; ``openapi``: this document; ``health``:
    the ``/healthz`` and ``/readyz`` probes; ``root``: the service index.
    ``None`` leaves a part out.
    """

    api: str = "/api"
    server: str = "/"
    openapi: str | None = "/openapi.json"
    health: tuple[str, str] | None = None
    root: str | None = None


def build_document(api: Api, mount: Mount | None = None, info: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The OpenAPI document for ``api``'s resources as they are registered now."""
    return _Builder(api).document(mount or Mount(), info or {})


class OpenApi:
    """Serves an :class:`Api`'s document: built once per registry state and mount, with a strong ETag.

    Paths are the app's own (the API's prefix, a Blueprint's ``url_prefix``);
    the server URL is relative (the script root, else ``/``), so the document
    is right behind any proxy without knowing the host.
    """

    def __init__(self, api: Api, info: Mapping[str, Any] | None = None) -> None:
        self.api = api
        self.info = dict(info or {})
        self._built: dict[tuple[int, Mount], tuple[bytes, str]] = {}

    def mount(self) -> Mount:
        """Where things are, from the app's URL map (in a request context)."""
        root = request.script_root

        def path(endpoint: str) -> str | None:
            try:
                url = url_for(endpoint)
            except BuildError:
                return None
            return url[len(root) :] if root and url.startswith(root) else url

        index = path(self.api.endpoint("index")) or f"{self.api.url_prefix}/"
        healthz, readyz = path("health.healthz"), path("health.readyz")
        return Mount(
            api=index.rstrip("/"),
            server=root or "/",
            openapi=path(self.api.endpoint("openapi")),
            health=(healthz, readyz) if healthz and readyz else None,
            root=path("index.index"),
        )

    def rendered(self) -> tuple[bytes, str]:
        """The document's bytes and ETag, for the current registrations and mount."""
        key = (self.api.version, self.mount())
        built = self._built.get(key)
        if built is None:
            body = orjson.dumps(build_document(self.api, key[1], self.info))
            built = (body, etag_of(body))
            if len(self._built) > 16:  # registrations changed, or many mounts: start over
                self._built.clear()
            self._built[key] = built
        return built

    def view(self) -> Response:
        body, etag = self.rendered()
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if none_match(request, etag):
            response = Response(status=304)
            response.headers.update(headers)
            return response
        response = Response(body, mimetype=JSON)
        response.headers.update(headers)
        return response


# ---------------------------------------------------------------- small helpers


def nullable(schema: Schema) -> Schema:
    """``schema`` or ``null``."""
    if not schema or schema.get("type") == "null" or {"type": "null"} in schema.get("anyOf", []):
        return schema
    if set(schema) == {"anyOf"}:
        return {"anyOf": [*schema["anyOf"], {"type": "null"}]}
    kind = schema.get("type")
    if isinstance(kind, list) and "null" in kind and ("enum" not in schema or None in schema["enum"]):
        return schema
    if kind is None or "$ref" in schema or "const" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
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


def _jsonable(value: Any) -> Any:
    """``value`` if it is plain JSON, else ``Ellipsis``."""
    try:
        return orjson.loads(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError):
        return ...


def _choices(field: BaseField) -> list[Any] | None:
    choices = getattr(field, "choices", None)
    if not choices or isinstance(field, mf.EnumField):
        return None
    values = [c[0] if isinstance(c, (list, tuple)) else c for c in choices]
    if any(isinstance(v, (mongoengine.Document, mongoengine.EmbeddedDocument, type)) for v in values):
        return None
    values = [_jsonable(v) for v in values]
    return None if ... in values else values


def _doc(cls: type[Any]) -> str | None:
    text = cls.__dict__.get("__doc__")
    return " ".join(text.split("\n\n")[0].split()) if isinstance(text, str) and text.strip() else None


def _identifier(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _class_names(cls: type[Any]) -> list[type[Any]]:
    """``cls`` and every subclass sharing its collection, as MongoEngine resolves their ``_cls``."""
    return [cls] + [get_document(n) for n in cls._subclasses if n != cls._class_name]


def _is_auto_pk(field: BaseField) -> bool:
    """Whether a new document gets its primary key without the client sending one."""
    return isinstance(field, (mf.ObjectIdField, mf.SequenceField)) or field.default is not None


def _required(field: BaseField) -> bool:
    """Whether a create must give the field a value (``null`` counts as none; a default fills it)."""
    return bool(field.required) and field.default is None and not getattr(field, "_auto_gen", False)


# ---------------------------------------------------------------- the document


class _Builder:
    def __init__(self, api: Api) -> None:
        self.api = api
        self.schemas: dict[str, Schema] = {}
        self._names: dict[Any, str] = {}
        self._taken: set[str] = {"Problem"}
        self._operation_ids: set[str] = set()

    # ------------------------------------------------------------ component names

    def _name(self, key: Any, preferred: str) -> tuple[str, bool]:
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

    def _resource_name(self, resource: Resource) -> str:
        key = ("resource", resource.name) if self._registered(resource) else ("default", resource.doc_cls)
        return self._name(key, resource.doc_cls.__name__)[0]

    def _registered(self, resource: Resource) -> bool:
        return self.api.resources.get(resource.name) is resource

    # ------------------------------------------------------------ whole document

    def document(self, mount: Mount, info: Mapping[str, Any]) -> dict[str, Any]:
        resources = [self.api.resources[name] for name in sorted(self.api.resources)]
        for resource in resources:  # registered resources get the plain names
            self._resource_name(resource)
        paths: dict[str, Any] = {}
        tags: list[dict[str, Any]] = []
        for resource in resources:
            paths.update(self._resource_paths(resource, mount.api))
            tag: dict[str, Any] = {"name": resource.name}
            description = _doc(resource.doc_cls)
            if description:
                tag["description"] = description
            tags.append(tag)
        paths.update(self._service_paths(mount))
        tags.append({"name": "service", "description": "The resource index, health probes and this document."})
        self.schemas["Problem"] = PROBLEM_SCHEMA
        return {
            "openapi": OPENAPI,
            "jsonSchemaDialect": DIALECT,
            "info": {
                "title": "RestEngine API",
                "version": __version__,
                "description": (
                    "MongoEngine documents served as REST resources. Every error is "
                    "`application/problem+json` (RFC 9457)."
                ),
                **info,
            },
            "servers": [{"url": mount.server}],
            "tags": tags,
            "paths": paths,
            "components": {
                "schemas": dict(sorted(self.schemas.items())),
                "parameters": PARAMETERS,
                "headers": HEADERS,
                "responses": RESPONSES,
            },
        }

    def _operation_id(self, verb: str, resource: Resource) -> str:
        base = f"{verb}_{_identifier(resource.name)}"
        name, n = base, 1
        while name in self._operation_ids:
            n += 1
            name = f"{base}_{n}"
        self._operation_ids.add(name)
        return name

    # ------------------------------------------------------------ field schemas: reading

    def read(self, field: BaseField) -> Schema:
        """The JSON a stored value of ``field`` reads as (``codec._converter``), ``null`` aside."""
        schema = self._read_kind(field)
        choices = _choices(field)
        if choices is not None and not isinstance(field, mf.ListField):  # a list's choices: see _read_kind
            schema["enum"] = choices
        return schema

    def _read_kind(self, field: BaseField) -> Schema:
        if isinstance(field, mf.ListField):
            items = self.read(field.field) if field.field is not None else {}
            choices = _choices(field)  # MongoEngine checks a list's choices on every element
            if choices is not None:
                items = {**items, "enum": choices}
            return _sized_list({"type": "array", "items": nullable(items)}, field)
        if isinstance(field, mf.MapField):
            return {"type": "object", "additionalProperties": nullable(self.read(field.field))}
        if isinstance(field, mf.DictField):
            return {"type": "object"}
        if isinstance(field, mf.EmbeddedDocumentField):
            return _ref(self.embedded(field.document_type, "read"))
        if isinstance(field, mf.GenericEmbeddedDocumentField):
            return self._generic_embedded(field, "read")
        if isinstance(field, REFERENCES):
            return self._reference(field)
        if isinstance(field, GENERIC_REFERENCES):
            return _generic_reference(field, read=True)
        if isinstance(field, (mf.ComplexDateTimeField, mf.DateTimeField)) and not isinstance(field, mf.DateField):
            return {"type": "string", "format": "date-time", "pattern": "Z$"}
        if isinstance(field, mf.DateField):
            return {"type": "string", "format": "date"}
        if isinstance(field, mf.DecimalField):
            return _bounded({"type": "string", "format": "decimal", "pattern": DECIMAL}, field, numeric=False)
        if isinstance(field, mf.Decimal128Field):
            return {"type": "string", "format": "decimal"}
        if isinstance(field, mf.ObjectIdField):
            return {"type": "string", "pattern": OBJECT_ID}
        if isinstance(field, mf.UUIDField):
            return {"type": "string", "format": "uuid"}
        if isinstance(field, mf.BinaryField):
            return _binary(field)
        if isinstance(field, mf.FileField):
            return {"type": "string", "description": "The id of the stored file."}
        if isinstance(field, mf.EnumField):
            return _enum(field)
        return self._plain(field)

    def _plain(self, field: BaseField) -> Schema:
        """Fields whose JSON value is the same read and written."""
        if isinstance(field, mf.BooleanField):
            return {"type": "boolean"}
        if isinstance(field, mf.SequenceField):
            return {"type": "integer", "format": "int64"}
        if isinstance(field, mf.IntField):
            return _bounded({"type": "integer", "format": "int64"}, field, numeric=True)
        if isinstance(field, mf.FloatField):
            return _bounded({"type": "number"}, field, numeric=True)
        if isinstance(field, mf.StringField):
            return _string(field)
        if isinstance(field, mf.GeoPointField):
            return {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}
        if isinstance(field, mf.GeoJsonBaseField):
            return {
                "type": "object",
                "description": f"GeoJSON {field._type}",
                "properties": {"type": {"const": field._type}, "coordinates": {"type": "array"}},
                "required": ["type", "coordinates"],
            }
        return {}

    def _reference(self, field: BaseField) -> Schema:
        """A reference reads as the referenced id (a string); ``?expand=`` makes it the referenced item."""
        target = field.document_type
        target_pk = target._fields[pk_name(target)]
        schema = _id_schema(target_pk)
        resource = self.api.resource_for(target)
        label = resource.name if self._registered(resource) else target.__name__
        schema["x-reference"] = label
        schema["description"] = f"The id of the referenced {target.__name__} (`{label}`)."
        if target._meta.get("abstract"):
            return schema
        return {"anyOf": [schema, _ref(self._read_component(resource))]}

    def _generic_embedded(self, field: BaseField, mode: str) -> Schema:
        classes = [get_document(c) if isinstance(c, str) else c for c in (field.choices or ())]
        if not classes:
            return {"type": "object", "properties": {"_cls": {"type": "string"}}, "required": ["_cls"]}
        return {"oneOf": [_ref(self.embedded(cls, mode, generic=True)) for cls in classes]}

    # ------------------------------------------------------------ field schemas: writing

    def write(self, field: BaseField, mode: str = "create") -> Schema:
        """The JSON ``codec.input_value`` accepts for ``field`` (validation rules included), ``null`` aside.

        ``mode`` ``"patch"`` gives embedded documents as partial objects (merge patch).
        """
        schema = self._write_kind(field, mode)
        choices = _choices(field)
        if choices is not None:
            if isinstance(field, mf.ListField):  # MongoEngine checks a list's choices on every element
                schema["items"] = {**schema["items"], "enum": choices}
            else:
                schema["enum"] = choices
        return schema

    def _write_kind(self, field: BaseField, mode: str) -> Schema:
        if isinstance(field, mf.ListField):  # codec refuses null items
            items = self.write(field.field) if field.field is not None else {"not": {"type": "null"}}
            schema = _sized_list({"type": "array", "items": items}, field)
            if field.required:
                schema["minItems"] = max(1, schema.get("minItems", 0))
            return schema
        if isinstance(field, mf.MapField):
            return {"type": "object", "additionalProperties": self.write(field.field)}
        if isinstance(field, mf.DictField):
            return {"type": "object"}
        if isinstance(field, mf.EmbeddedDocumentField):
            return _ref(self.embedded(field.document_type, "patch" if mode == "patch" else "write"))
        if isinstance(field, mf.GenericEmbeddedDocumentField):
            return self._generic_embedded(field, "write")
        if isinstance(field, REFERENCES):
            target = field.document_type
            schema = _id_input(target._fields[pk_name(target)])
            resource = self.api.resource_for(target)
            label = resource.name if self._registered(resource) else target.__name__
            schema["x-reference"] = label
            schema["description"] = f"The id of an existing {target.__name__} (`{label}`)."
            return schema
        if isinstance(field, GENERIC_REFERENCES):
            return _generic_reference(field, read=False)
        if isinstance(field, (mf.ComplexDateTimeField, mf.DateTimeField)):
            return {
                "type": "string",
                "anyOf": [{"format": "date-time"}, {"format": "date"}],
                "description": "ISO 8601 (`codec.parse_datetime`); a date alone is midnight UTC.",
            }
        if isinstance(field, mf.DecimalField):
            return {
                "anyOf": [
                    {"type": "string", "format": "decimal", "pattern": DECIMAL_INPUT},
                    _decimal_range(_bounded({"type": "number"}, field, numeric=True), field),
                ],
                **({"description": d} if (d := _bounds_text(field)) else {}),
            }
        if isinstance(field, mf.Decimal128Field):
            return {"type": ["string", "number"], "format": "decimal"}
        if isinstance(field, mf.ObjectIdField):
            return {"type": "string", "pattern": OBJECT_ID_INPUT}
        if isinstance(field, mf.UUIDField):
            return {"type": "string", "format": "uuid"}
        if isinstance(field, mf.BinaryField):
            return _binary(field)
        if isinstance(field, mf.FileField):
            return {"readOnly": True}
        if isinstance(field, mf.EnumField):
            return _enum(field)
        if isinstance(field, mf.IntField):
            schema = _bounded({"type": "integer", "format": "int64"}, field, numeric=True)
            schema.setdefault("minimum", -INT64)
            schema.setdefault("maximum", INT64 - 1)
            return schema
        if isinstance(field, mf.GeoJsonBaseField):
            return {
                "anyOf": [{"type": "array"}, self._plain(field)],
                "description": f"GeoJSON {field._type}, or its coordinates alone.",
            }
        return self._plain(field)

    # ------------------------------------------------------------ embedded documents

    def embedded(self, cls: type[Any], mode: str, generic: bool = False) -> str:
        """The component for an EmbeddedDocument class: ``read``, ``write`` (whole) or ``patch`` (partial).

        ``generic``: as a GenericEmbeddedDocumentField holds it, ``_cls`` always present.
        """
        suffix = {"read": "", "write": "Input", "patch": "Patch"}[mode] + ("WithCls" if generic else "")
        name, new = self._name(("embedded", cls, mode, generic), cls.__name__ + suffix)
        if not new:
            return name
        inheriting = bool(cls._meta.get("allow_inheritance"))
        if mode == "read" and (generic or inheriting):
            variants = [self._embedded_object(k, mode, cls_const=k._class_name) for k in _class_names(cls)]
            schema = variants[0] if len(variants) == 1 else {"oneOf": variants}
        else:
            # Writing an EmbeddedDocumentField builds the declared class; ``_cls`` is ignored.
            schema = self._embedded_object(cls, mode, cls_const=cls._class_name if generic else None)
        if _doc(cls):
            schema = {**schema, "description": _doc(cls)}
        self.schemas[name] = schema
        return name

    def _embedded_object(self, cls: type[Any], mode: str, cls_const: str | None) -> Schema:
        properties: Schema = {}
        required: list[str] = []
        if cls_const is not None:
            properties["_cls"] = {"const": cls_const}
            required.append("_cls")
        elif mode != "read":
            properties["_cls"] = {"description": "Ignored: the field's declared class is built."}
        for name in cls._fields_ordered:
            field = cls._fields[name]
            if name == "_cls" or (mode != "read" and name.startswith("_")):
                continue
            if mode == "read":
                properties[name] = self._read_property(field)
                required.append(name)  # decode_embedded writes every field
            elif mode == "patch":
                properties[name] = nullable(self.write(field, "patch"))
            else:
                properties[name] = self.write(field) if _required(field) else nullable(self.write(field))
                if _required(field):
                    required.append(name)
                _add_default(properties[name], field)
        schema: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
        if required:
            schema["required"] = required
        return schema

    def _read_property(self, field: BaseField) -> Schema:
        """A field as read: its value, ``null``, or (for a missing field) what ``codec`` reads instead."""
        schema = nullable(self.read(field))
        missing = codec._default(field)
        if missing is not None and field.default is not None and not callable(field.default):
            try:
                proper = codec._converter(field)(field.to_mongo(field.default))
            except Exception:  # a default the field cannot even store: describe what is read
                proper = ...
            if _jsonable(missing) != _jsonable(proper):
                # codec reads a missing field as the raw default, not as its stored form would read
                schema = {"anyOf": [schema, {"const": _jsonable(missing)}]}
        return schema

    # ------------------------------------------------------------ documents

    def _read_component(self, resource: Resource) -> str:
        """The component of ``resource``'s items as responses hold them."""
        name = self._resource_name(resource)
        if self.schemas[name]:
            return name
        self.schemas[name] = {"type": "object"}  # placeholder against recursion
        classes = _class_names(resource.doc_cls) if resource.with_cls else [resource.doc_cls]
        if len(classes) == 1:
            schema = self._document_object(resource, classes[0], "read")
        else:
            variants: dict[str, str] = {}
            for cls in classes:
                variant, _ = self._name(("variant", name, cls), f"{name}.{cls.__name__}")
                self.schemas[variant] = self._document_object(resource, cls, "read")
                variants[cls._class_name] = variant
            schema = {
                "oneOf": [_ref(v) for v in variants.values()],
                "discriminator": {
                    "propertyName": "_cls",
                    "mapping": {k: f"#/components/schemas/{v}" for k, v in variants.items()},
                },
            }
        description = _doc(resource.doc_cls)
        if description:
            schema["description"] = description
        self.schemas[name] = schema
        return name

    def _write_component(self, resource: Resource, mode: str) -> str:
        """``Create`` (POST), ``Replace`` (PUT) or ``Patch`` (merge patch) body of ``resource``."""
        base = self._resource_name(resource)
        name, new = self._name((mode, resource.name), base + mode.capitalize())
        if not new:
            return name
        classes = _class_names(resource.doc_cls) if resource.with_cls else [resource.doc_cls]
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
        if mode == "read":
            properties["id"] = _id_schema(pk_field)
            required.append("id")
        elif mode == "create":
            id_schema = _id_input(pk_field)
            auto = _is_auto_pk(pk_field)
            id_schema["description"] = "The primary key" + ("; optional, generated when left out." if auto else ".")
            properties["id"] = id_schema
            if pk != "id":
                properties[pk] = {**id_schema, "description": "The primary key under its own name (same as id)."}
        else:  # the current id, as read: it may be repeated, not changed
            id_schema = {**_id_schema(pk_field), "description": "The primary key; may be repeated, not changed."}
            properties["id"] = id_schema
            if pk != "id":
                properties[pk] = {**id_schema, "description": "The primary key under its own name (same as id)."}
        if resource.with_cls:
            if mode == "read" or (mode == "create" and cls is not resource.doc_cls):
                properties["_cls"] = {"const": cls._class_name}
                required.append("_cls")
            elif mode == "create":
                properties["_cls"] = {"anyOf": [{"const": cls._class_name}, {"type": "null"}]}
                properties["_cls"]["description"] = "The class; optional (null or absent: this one)."
            else:
                properties["_cls"] = {"const": cls._class_name, "description": "The class; cannot be changed."}
        elif mode == "create":
            properties["_cls"] = {
                "anyOf": [{"const": cls._class_name}, {"type": "null"}],
                "description": "Optional: the class name, if given.",
            }
        for name in public_fields(cls):
            if name == pk or name not in resource.exposed:
                continue
            field = cls._fields[name]
            writable = name in resource.writable
            if mode == "read":
                properties[name] = self._read_property(field)
                if name in resource.options.read_only:
                    properties[name] = {**properties[name], "readOnly": True}
            elif not writable:
                if mode != "create":  # may be sent back unchanged
                    repeat = self._read_property(field)
                    properties[name] = {**repeat, "readOnly": True, "description": "Read-only: may repeat the value."}
            elif mode == "patch":
                properties[name] = nullable(self.write(field, "patch"))
            else:
                needed = _required(field)
                properties[name] = self.write(field) if needed else nullable(self.write(field))
                _add_default(properties[name], field)
                if needed:
                    required.append(name)
        if mode == "patch":  # null removes a member: allowed for every one
            properties = {name: nullable(value) for name, value in properties.items()}
        schema: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
        if required:
            schema["required"] = required
        if mode == "create" and not _is_auto_pk(pk_field):
            schema["anyOf"] = [{"required": ["id"]}] + ([{"required": [pk]}] if pk != "id" else [])
        return schema

    # ------------------------------------------------------------ paths

    def _resource_paths(self, resource: Resource, api_base: str) -> dict[str, Any]:
        collection = f"{api_base}/{resource.name}"
        tag = [resource.name]
        item_name = self._read_component(resource)
        methods = resource.methods
        pk_field = resource.doc_cls._fields[resource.pk]
        item_id = {
            "name": "id",
            "in": "path",
            "required": True,
            "description": f"The primary key ({type(pk_field).__name__}).",
            "schema": _path_id(pk_field),
        }
        list_name, _ = self._name(("list", resource.name), f"{item_name}List")
        self.schemas[list_name] = {
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": _ref(item_name), "maxItems": resource.options.max_limit},
                "next": {
                    "type": ["string", "null"],
                    "format": "uri",
                    "description": "The next page's URL; null on the last page.",
                },
                "count": {"type": "integer", "minimum": 0, "description": "With ?count= only."},
            },
            "required": ["items", "next"],
            "additionalProperties": False,
        }
        read_params = self._read_parameters(resource)
        list_op = {
            "tags": tag,
            "operationId": self._operation_id("list", resource),
            "summary": f"A page of {resource.name}",
            "description": (
                "Filters are `field=value` or `field__operator=value` (at most "
                f"{filters.MAX_FILTERS}); `in`, `nin` and `all` take comma-separated values. "
                "Keyset pagination: follow `next` (or the `Link` header)."
            ),
            "parameters": [
                *read_params,
                *self._list_parameters(resource),
                {"$ref": "#/components/parameters/IfNoneMatch"},
            ],
            "responses": {
                "200": {
                    "description": "A page of items.",
                    "headers": {
                        "ETag": {"$ref": "#/components/headers/ETag-required"},
                        "Link": {"$ref": "#/components/headers/Link"},
                        "X-Total-Count": {"$ref": "#/components/headers/X-Total-Count"},
                        "Cache-Control": {"$ref": "#/components/headers/Cache-Control"},
                        "X-Cache": {"$ref": "#/components/headers/X-Cache"},
                    },
                    "content": {JSON: {"schema": _ref(list_name)}},
                },
                **_responses("304", "400", "414", "500", "503"),
            },
        }
        paths: dict[str, Any] = {collection: {"get": list_op}}
        if "POST" in methods:
            create = self._write_component(resource, "create")
            created_many, _ = self._name(("created", resource.name), f"{item_name}Created")
            self.schemas[created_many] = {
                "type": "object",
                "properties": {"items": {"type": "array", "items": _ref(item_name), "minItems": 1}},
                "required": ["items"],
                "additionalProperties": False,
            }
            paths[collection]["post"] = {
                "tags": tag,
                "operationId": self._operation_id("create", resource),
                "summary": f"Create one or several {resource.name}",
                "description": (
                    "An object creates one item. An array creates all of them in one insert, or none: "
                    "every item is validated first (422 with errors by index)."
                ),
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {
                            "schema": {"oneOf": [_ref(create), {"type": "array", "items": _ref(create), "minItems": 1}]}
                        }
                    },
                },
                "responses": {
                    "201": {
                        "description": "Created: the item (for an object) or `{items}` (for an array).",
                        "headers": {
                            "ETag": {"$ref": "#/components/headers/ETag-required"},
                            "Location": {"$ref": "#/components/headers/Location"},
                        },
                        "content": {JSON: {"schema": {"oneOf": [_ref(item_name), _ref(created_many)]}}},
                    },
                    **_responses("400", "409", "413", "414", "415", "422", "500", "503"),
                },
            }
            paths[f"{collection}/_bulk"] = {"post": self._bulk_operation(resource)}
        item: dict[str, Any] = {
            "parameters": [item_id],
            "get": {
                "tags": tag,
                "operationId": self._operation_id("get", resource),
                "summary": f"One of {resource.name}",
                "parameters": [*read_params, {"$ref": "#/components/parameters/IfNoneMatch"}],
                "responses": {
                    "200": {
                        "description": "The item.",
                        "headers": {
                            "ETag": {"$ref": "#/components/headers/ETag-required"},
                            "Cache-Control": {"$ref": "#/components/headers/Cache-Control"},
                            "X-Cache": {"$ref": "#/components/headers/X-Cache"},
                        },
                        "content": {JSON: {"schema": _ref(item_name)}},
                    },
                    **_responses("304", "400", "404", "405", "414", "500", "503"),
                },
            },
        }
        changed = {
            "description": "The item as it is now stored.",
            "headers": {"ETag": {"$ref": "#/components/headers/ETag-required"}},
            "content": {JSON: {"schema": _ref(item_name)}},
        }
        write_errors = _responses("400", "404", "405", "409", "412", "413", "414", "415", "422", "500", "503")
        if "PUT" in methods:
            item["put"] = {
                "tags": tag,
                "operationId": self._operation_id("replace", resource),
                "summary": f"Replace one of {resource.name}",
                "description": (
                    "Writable fields left out are reset to their default; read-only fields may be "
                    "repeated unchanged; `id` and `_cls` cannot change."
                ),
                "parameters": [{"$ref": "#/components/parameters/IfMatch"}],
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": _ref(self._write_component(resource, "replace"))}},
                },
                "responses": {"200": changed, **write_errors},
            }
        if "PATCH" in methods:
            patch = _ref(self._write_component(resource, "patch"))
            item["patch"] = {
                "tags": tag,
                "operationId": self._operation_id("patch", resource),
                "summary": f"Change one of {resource.name} (JSON merge patch, RFC 7396)",
                "description": "`null` removes a member: the field is reset to its default.",
                "parameters": [{"$ref": "#/components/parameters/IfMatch"}],
                "requestBody": {"required": True, "content": {MERGE_PATCH: {"schema": patch}, JSON: {"schema": patch}}},
                "responses": {"200": changed, **write_errors, "415": {"$ref": "#/components/responses/PatchMediaType"}},
            }
        if "DELETE" in methods:
            item["delete"] = {
                "tags": tag,
                "operationId": self._operation_id("delete", resource),
                "summary": f"Delete one of {resource.name}",
                "parameters": [{"$ref": "#/components/parameters/IfMatch"}],
                "responses": {
                    "204": {"description": "Deleted."},
                    **_responses("404", "405", "409", "412", "414", "500", "503"),
                },
            }
        paths[f"{collection}/{{id}}"] = item
        return paths

    def _bulk_operation(self, resource: Resource) -> dict[str, Any]:
        pk = _id_input(resource.doc_cls._fields[resource.pk])
        create = _ref(self._write_component(resource, "create"))
        replace = _ref(self._write_component(resource, "replace"))
        patch = _ref(self._write_component(resource, "patch"))

        def op(kind: str, **members: Schema) -> Schema:
            return {
                "type": "object",
                "properties": {"op": {"const": kind}, **members},
                "required": ["op", *members],
            }

        kinds = {
            "insert": op("insert", document=create),
            "update": op("update", id=pk, patch=patch),
            "replace": op("replace", id=pk, document=replace),
            "delete": op("delete", id=pk),
        }
        allowed = [name for name, method in BULK_METHODS.items() if method in resource.methods]
        results, _ = self._name(("bulk-results", resource.name), f"{self._resource_name(resource)}BulkResults")
        self.schemas[results] = BULK_RESULTS
        return {
            "tags": [resource.name],
            "operationId": self._operation_id("bulk", resource),
            "summary": f"Insert, update, replace and delete {resource.name} in one bulk write",
            "description": (
                "Every operation is validated first (422 with errors by index, nothing written), then all "
                "are sent in one `bulk_write`. Deletes honour DENY rules; a document with other delete rules "
                "must be deleted with DELETE on the item. Only the operations whose method the resource "
                "allows are available (insert: POST, update: PATCH, replace: PUT, delete: DELETE)."
            ),
            "requestBody": {
                "required": True,
                "content": {
                    JSON: {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "operations": {
                                    "type": "array",
                                    "minItems": 1,
                                    "maxItems": 1000,
                                    "items": {"oneOf": [kinds[name] for name in allowed]},
                                },
                                "ordered": {"type": "boolean", "default": True},
                            },
                            "required": ["operations"],
                        }
                    }
                },
            },
            "responses": {
                "200": {"description": "Every operation succeeded.", "content": {JSON: {"schema": _ref(results)}}},
                "409": {
                    "description": (
                        "Some operation failed in the database (a unique index, ...): results say which; "
                        "in an ordered batch, later ones were not attempted (status null)."
                    ),
                    "content": {JSON: {"schema": _ref(results)}},
                },
                **_responses("400", "413", "414", "415", "422", "500", "503"),
            },
        }

    # ------------------------------------------------------------ query parameters

    def _read_parameters(self, resource: Resource) -> list[dict[str, Any]]:
        """``fields`` and ``expand``: both the list and the item take them."""
        names = [n for n in public_fields(resource.doc_cls) if n in resource.exposed]
        for cls in _class_names(resource.doc_cls)[1:] if resource.with_cls else ():
            names += [n for n in public_fields(cls) if n in resource.exposed and n not in names]
        if "id" not in names:
            names.insert(0, "id")
        params: list[dict[str, Any]] = [
            {
                "name": "fields",
                "in": "query",
                "description": "Return only these fields (and id).",
                "style": "form",
                "explode": False,
                "schema": {"type": "array", "items": {"enum": names}, "minItems": 1},
            }
        ]
        expandable = self._expandable(resource)
        if expandable:
            params.append(
                {
                    "name": "expand",
                    "in": "query",
                    "description": "Replace these references by the referenced items (one query each).",
                    "style": "form",
                    "explode": False,
                    "schema": {
                        "type": "array",
                        "items": {"enum": expandable},
                        "minItems": 1,
                        "maxItems": 5,
                        "uniqueItems": True,
                    },
                }
            )
        return params

    def _expandable(self, resource: Resource) -> list[str]:
        found: list[str] = []
        for path, field in _paths(resource.doc_cls):
            if _is_reference_path(field):
                param = path.replace("__", ".")
                try:
                    reads.parse_expand(resource, param, resource.exposed, self.api.resource_for)
                except InvalidParameter:
                    continue
                found.append(param)
        return found

    def _list_parameters(self, resource: Resource) -> list[dict[str, Any]]:
        options = resource.options
        sortable = self._sortable(resource)
        params: list[dict[str, Any]] = []
        if sortable:
            params.append(
                {
                    "name": "sort",
                    "in": "query",
                    "description": "Sort keys, `-` for descending; `id` is always the last tiebreak.",
                    "style": "form",
                    "explode": False,
                    "schema": {
                        "type": "array",
                        "items": {"enum": [k for s in sortable for k in (s, f"-{s}")]},
                        "minItems": 1,
                        "maxItems": pagination.MAX_SORT_KEYS,
                        "uniqueItems": True,
                    },
                }
            )
        params += [
            {
                "name": "limit",
                "in": "query",
                "description": "Items per page.",
                "schema": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": options.max_limit,
                    "default": options.default_limit,
                },
            },
            {"$ref": "#/components/parameters/Cursor"},
            {"$ref": "#/components/parameters/Count"},
        ]
        params += self._filter_parameters(resource)
        return params

    def _sortable(self, resource: Resource) -> list[str]:
        keys: list[str] = []
        for path, _ in _paths(resource.doc_cls):
            try:
                pagination.parse_sort(
                    resource.doc_cls, path, sortable=resource.options.sortable, hidden=resource.unexposed
                )
            except InvalidParameter:
                continue
            keys.append(path)
        return keys

    def _filter_parameters(self, resource: Resource) -> list[dict[str, Any]]:
        params: list[dict[str, Any]] = []
        for path, _ in _paths(resource.doc_cls):
            for op in sorted(ALL_OPERATORS, key=_OPERATOR_ORDER.index):
                name = path if op == "eq" else f"{path}__{op}"
                if name in RESERVED_PARAMETERS:
                    continue
                try:
                    found, parsed = filters.filter_parameter(
                        resource.doc_cls, name, filterable=resource.filterable, hidden=resource.unexposed
                    )
                except InvalidParameter:
                    continue
                if parsed != op or found.name != path:
                    continue  # the name means something else (a field named like an operator)
                schema = _filter_schema(found.field, op)
                if schema is None:
                    continue
                param: dict[str, Any] = {"name": name, "in": "query", "schema": schema}
                if op in ("in", "nin", "all"):
                    param.update(style="form", explode=False)
                param["description"] = _OPERATOR_TEXT[op]
                params.append(param)
        return params

    # ------------------------------------------------------------ the rest

    def _service_paths(self, mount: Mount) -> dict[str, Any]:
        paths: dict[str, Any] = {}
        tag = ["service"]
        paths[f"{mount.api}/"] = {
            "get": {
                "tags": tag,
                "operationId": "api_index",
                "summary": "The resources and their URLs",
                "parameters": [{"$ref": "#/components/parameters/IfNoneMatch"}],
                "responses": {
                    "200": {
                        "description": "Every resource, sorted by name.",
                        "headers": {"ETag": {"$ref": "#/components/headers/ETag-required"}},
                        "content": {JSON: {"schema": INDEX_SCHEMA}},
                    },
                    **_responses("304", "500"),
                },
            }
        }
        if mount.openapi is not None:
            paths[mount.openapi] = {
                "get": {
                    "tags": tag,
                    "operationId": "openapi",
                    "summary": "This document",
                    "parameters": [{"$ref": "#/components/parameters/IfNoneMatch"}],
                    "responses": {
                        "200": {
                            "description": "The OpenAPI 3.1 document.",
                            "headers": {"ETag": {"$ref": "#/components/headers/ETag-required"}},
                            "content": {JSON: {"schema": {"type": "object", "required": ["openapi", "paths"]}}},
                        },
                        **_responses("304", "500"),
                    },
                }
            }
        if mount.root is not None:
            paths[mount.root] = {
                "get": {
                    "tags": tag,
                    "operationId": "service_index",
                    "summary": "What this service is, with links",
                    "responses": {
                        "200": {"description": "Links.", "content": {JSON: {"schema": ROOT_SCHEMA}}},
                        **_responses("500"),
                    },
                }
            }
        if mount.health is not None:
            healthz, readyz = mount.health
            no_store = {"Cache-Control": {"$ref": "#/components/headers/Cache-Control"}}
            paths[healthz] = {
                "get": {
                    "tags": tag,
                    "operationId": "healthz",
                    "summary": "Liveness (no I/O)",
                    "responses": {
                        "200": {
                            "description": "The process is serving.",
                            "headers": no_store,
                            "content": {
                                JSON: {
                                    "schema": {
                                        "type": "object",
                                        "properties": {"status": {"const": "ok"}},
                                        "required": ["status"],
                                        "additionalProperties": False,
                                    }
                                }
                            },
                        },
                        **_responses("500"),
                    },
                }
            }
            paths[readyz] = {
                "get": {
                    "tags": tag,
                    "operationId": "readyz",
                    "summary": "Readiness: pings the database and Redis",
                    "responses": {
                        "200": {
                            "description": "Ready.",
                            "headers": no_store,
                            "content": {JSON: {"schema": READY_SCHEMA}},
                        },
                        "503": {
                            "description": "Not ready: `checks` says what failed.",
                            "headers": {"Retry-After": {"$ref": "#/components/headers/Retry-After"}, **no_store},
                            "content": {PROBLEM_JSON: {"schema": NOT_READY_SCHEMA}},
                        },
                        **_responses("500"),
                    },
                }
            }
        return paths


# ---------------------------------------------------------------- field schema pieces


def _string(field: BaseField) -> Schema:
    schema: Schema = {"type": "string"}
    if isinstance(field, mf.EmailField):
        schema["format"] = "email"
    elif isinstance(field, mf.URLField):
        schema["format"] = "uri"
    if getattr(field, "max_length", None) is not None:
        schema["maxLength"] = field.max_length
    if getattr(field, "min_length", None) is not None:
        schema["minLength"] = field.min_length
    if getattr(field, "regex", None) is not None:
        schema["pattern"] = ecma_pattern(field.regex)
    return schema


def _bounded(schema: Schema, field: BaseField, *, numeric: bool) -> Schema:
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


def _binary(field: BaseField) -> Schema:
    schema: Schema = {"type": "string", "contentEncoding": "base64", "pattern": BASE64}
    max_bytes = getattr(field, "max_bytes", None)
    if max_bytes is not None:
        schema["maxLength"] = 4 * -(-int(max_bytes) // 3)
    return schema


def _enum(field: BaseField) -> Schema:
    allowed = field.choices or list(field._enum_cls)
    values = [member.value for member in allowed]
    kinds = {"string" if isinstance(v, str) else "integer" if isinstance(v, int) else "other" for v in values}
    return {"type": kinds.pop(), "enum": values} if len(kinds) == 1 and "other" not in kinds else {"enum": values}


def _sized_list(schema: Schema, field: BaseField) -> Schema:
    max_length = getattr(field, "max_length", None)
    if max_length is not None:
        schema["maxItems"] = max_length
    return schema


def _add_default(schema: Schema, field: BaseField) -> None:
    default = field.default
    if default is None or callable(default):
        return
    try:
        value = _jsonable(codec._converter(field)(field.to_mongo(default)))
    except Exception:  # a default the codec cannot render: say nothing
        return
    if value is not ...:
        schema["default"] = value


def _decimal_range(schema: Schema, field: BaseField) -> Schema:
    """Bounds a DecimalField can take: it quantizes to ``precision`` places within 28 digits."""
    limit = float(10 ** (28 - int(getattr(field, "precision", 2))))
    if schema.get("minimum") is None:
        schema["exclusiveMinimum"] = -limit
    if schema.get("maximum") is None:
        schema["exclusiveMaximum"] = limit
    return schema


def _document_classes() -> list[str]:
    """Every concrete Document class MongoEngine can resolve by name (what a generic reference may name)."""
    from mongoengine.base.common import _document_registry

    return sorted(
        name
        for name, cls in _document_registry.items()
        if issubclass(cls, mongoengine.Document) and not cls._meta.get("abstract")
    )


def _generic_reference(field: BaseField, *, read: bool) -> Schema:
    classes = [c if isinstance(c, str) else c._class_name for c in (field.choices or ())]
    if not classes and not read:
        classes = _document_classes()
    cls_schema: Schema = {"enum": classes} if classes else {"type": "string"}
    id_schema: Schema = {"type": "string"} if read else {"type": ["string", "integer"]}
    return {
        "type": "object",
        "description": "A reference to a document of any class: its class name and id.",
        "properties": {
            "_cls": nullable(cls_schema) if read else cls_schema,
            "id": nullable(id_schema) if read else id_schema,
        },
        "required": ["_cls", "id"],
        "additionalProperties": not read,
    }


def _id_schema(field: BaseField) -> Schema:
    """An id as responses give it: ``str()`` of the stored primary key."""
    if isinstance(field, mf.ObjectIdField):
        return {"type": "string", "pattern": OBJECT_ID}
    if isinstance(field, mf.UUIDField):
        return {"type": "string", "format": "uuid"}
    if isinstance(field, (mf.IntField, mf.SequenceField)):
        return {"type": "string", "pattern": "^-?[0-9]+$"}
    return {"type": "string"}


def _id_input(field: BaseField) -> Schema:
    """An id as bodies may give it (``codec.pk_value(str(value))``), with the field's own rules."""
    if isinstance(field, mf.ObjectIdField):
        return {"type": "string", "pattern": OBJECT_ID_INPUT}
    if isinstance(field, mf.UUIDField):
        return {"type": "string", "format": "uuid"}
    if isinstance(field, (mf.IntField, mf.SequenceField)):
        return {"anyOf": [{"type": "integer", "format": "int64"}, {"type": "string", "pattern": "^-?[0-9]+$"}]}
    if isinstance(field, mf.StringField):
        return _string(field)
    return {"type": "string"}


def _path_id(field: BaseField) -> Schema:
    """The ``{id}`` path segment: what ``codec.pk_value`` can parse (other text is a 404)."""
    if isinstance(field, (mf.IntField, mf.SequenceField)):
        return {"type": "integer", "format": "int64"}
    if isinstance(field, (mf.ObjectIdField, mf.UUIDField)):
        return _id_input(field)
    schema: Schema = {"type": "string", "minLength": 1}
    if isinstance(field, mf.StringField):
        schema.update(_string(field))
    schema["not"] = {"const": "_bulk"}  # /<name>/_bulk is the bulk endpoint
    return schema


def _paths(doc_cls: type[Any], prefix: str = "", depth: int = 0) -> Iterator[tuple[str, BaseField]]:
    """Every client field path of ``doc_cls`` (``id`` for the primary key), into embedded documents."""
    pk = pk_name(doc_cls) if issubclass(doc_cls, mongoengine.Document) else None
    for name in public_fields(doc_cls) if pk else [n for n in doc_cls._fields_ordered if n != "_cls"]:
        if name.startswith("_"):
            continue
        field = doc_cls._fields[name]
        path = f"{prefix}{'id' if name == pk else name}"
        yield path, field
        inner = embedded_type(field)
        if inner is not None and depth < MAX_DEPTH:
            yield from _paths(inner, f"{path}__", depth + 1)


def _is_reference_path(field: BaseField) -> bool:
    inner = field
    while isinstance(inner, mf.ListField) and inner.field is not None:
        inner = inner.field
    return isinstance(inner, REFERENCES)


_OPERATOR_ORDER = [
    "eq", "ne", "lt", "lte", "gt", "gte", "in", "nin", "exists", "size", "all",
    "contains", "icontains", "startswith", "istartswith", "endswith", "iendswith", "iexact",
]  # fmt: skip
_OPERATOR_TEXT = {
    "eq": "Equal to (an element of, for a list).",
    "ne": "Not equal to.",
    "lt": "Less than.",
    "lte": "Less than or equal to.",
    "gt": "Greater than.",
    "gte": "Greater than or equal to.",
    "in": "Any of these (comma-separated).",
    "nin": "None of these (comma-separated).",
    "all": "Contains all of these (comma-separated).",
    "exists": "Present (true) or missing (false).",
    "size": "Has this many elements.",
    "contains": "Contains this text (literally, case-sensitive).",
    "icontains": "Contains this text (literally, any case).",
    "startswith": "Starts with this text (case-sensitive).",
    "istartswith": "Starts with this text (any case).",
    "endswith": "Ends with this text (case-sensitive).",
    "iendswith": "Ends with this text (any case).",
    "iexact": "Equal to this text in any case.",
}


def _filter_value(field: BaseField, *, in_list: bool) -> Schema | None:
    """The query-string value of a filter on ``field`` (``filters.coerce``)."""
    kind = filters.value_kind(field)
    inner = field
    while isinstance(inner, mf.ListField) and inner.field is not None:
        inner = inner.field
    if kind == "reference":
        target = inner.document_type
        return _filter_value(target._fields[pk_name(target)], in_list=in_list)
    if kind == "datetime":
        return {"type": "string", "format": "date-time"}
    if kind == "string":
        pattern = LIST_ITEM if in_list else NO_NUL
        return {"type": "string", "maxLength": filters.MAX_VALUE_LENGTH, "pattern": pattern}
    if kind == "integer":
        return {"type": "integer", "format": "int64", "minimum": -INT64, "maximum": INT64 - 1}
    if kind == "number":
        return _decimal_range({"type": "number"}, inner) if isinstance(inner, mf.DecimalField) else {"type": "number"}
    if kind == "boolean":
        return {"type": "boolean"}
    if kind == "objectid":
        return {"type": "string", "pattern": OBJECT_ID_INPUT}
    if kind == "uuid":
        return {"type": "string", "format": "uuid"}
    if kind == "enum":
        return {"type": "string", "enum": [str(member.value) for member in inner._enum_cls]}
    return None


def _filter_schema(field: BaseField, op: str) -> Schema | None:
    if op == "exists":
        return {"type": "boolean"}
    if op == "size":
        return {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
    if op in filters.TEXT_OPERATORS:
        return {"type": "string", "maxLength": filters.MAX_VALUE_LENGTH, "pattern": NO_NUL}
    if op in ("in", "nin", "all"):
        item = _filter_value(field, in_list=True)
        if item is None:
            return None
        return {"type": "array", "items": item, "minItems": 1, "maxItems": filters.MAX_LIST_ITEMS}
    return _filter_value(field, in_list=False)


def _responses(*statuses: str) -> dict[str, Any]:
    return {status: {"$ref": f"#/components/responses/{RESPONSE_NAMES[status]}"} for status in statuses}


# ---------------------------------------------------------------- fixed components

PROBLEM_SCHEMA: Schema = {
    "type": "object",
    "description": "An error (RFC 9457). `errors` names each offending parameter, field or index.",
    "properties": {
        "type": {"type": "string", "format": "uri-reference", "examples": ["urn:restengine:problem:validation"]},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "errors": {
            "type": "object",
            "description": (
                "By query parameter (a list of messages), by field (a message, or an object for "
                "embedded documents and lists), or by index for arrays and _bulk."
            ),
        },
    },
    "required": ["type", "title", "status"],
}

NOT_READY_SCHEMA: Schema = {
    "allOf": [
        {"$ref": "#/components/schemas/Problem"},
        {
            "type": "object",
            "properties": {"checks": {"type": "object", "additionalProperties": {"type": "string"}}},
            "required": ["checks"],
        },
    ]
}

READY_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "status": {"const": "ready"},
        "checks": {
            "type": "object",
            "additionalProperties": {"type": "string", "description": "ok, not configured"},
        },
    },
    "required": ["status", "checks"],
    "additionalProperties": False,
}

INDEX_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "resources": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "url": {"type": "string", "format": "uri"}},
                "required": ["name", "url"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["resources"],
    "additionalProperties": False,
}

ROOT_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "links": {"type": "object", "additionalProperties": {"type": "string", "format": "uri"}},
    },
    "required": ["name", "links"],
}

BULK_RESULTS: Schema = {
    "type": "object",
    "properties": {
        "results": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer", "minimum": 0},
                    "op": {"enum": ["insert", "update", "replace", "delete"]},
                    "id": {"type": "string"},
                    "status": {
                        "enum": [200, 201, 204, 409, 422, None],
                        "description": "null: not attempted, after a failure in an ordered batch.",
                    },
                    "error": {"type": "string"},
                },
                "required": ["index", "op", "id", "status"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["results"],
    "additionalProperties": False,
}

PARAMETERS: dict[str, Any] = {
    "IfNoneMatch": {
        "name": "If-None-Match",
        "in": "header",
        "description": "ETags you hold: 304 when the representation is still one of them.",
        "schema": {"type": "string"},
    },
    "IfMatch": {
        "name": "If-Match",
        "in": "header",
        "description": "Write only if the item's ETag is one of these (strong comparison); else 412.",
        "schema": {"type": "string"},
    },
    "Cursor": {
        "name": "cursor",
        "in": "query",
        "description": "Where the page starts: the opaque, signed token from `next`. Any other value is a 400.",
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,4096}$"},
    },
    "Count": {
        "name": "count",
        "in": "query",
        "description": "Add the total (`count`, `X-Total-Count`); `estimated` is cheaper without filters.",
        "schema": {"enum": ["exact", "estimated"]},
    },
}

HEADERS: dict[str, Any] = {
    "ETag": {"description": "A strong ETag of the body.", "schema": {"type": "string", "pattern": ETAG}},
    "ETag-required": {
        "description": "A strong ETag of the body.",
        "required": True,
        "schema": {"type": "string", "pattern": ETAG},
    },
    "Link": {"description": 'The next page: `<url>; rel="next"`.', "schema": {"type": "string"}},
    "X-Total-Count": {"description": "The total, with `?count=`.", "schema": {"type": "integer", "minimum": 0}},
    "Location": {"description": "The created item's URL (for an object body).", "schema": {"type": "string"}},
    "Cache-Control": {"description": "How clients may cache the response.", "schema": {"type": "string"}},
    "X-Cache": {
        "description": "How the shared cache answered, when it is on.",
        "schema": {"enum": ["hit", "miss", "stale"]},
    },
    "Allow": {"description": "The methods allowed.", "required": True, "schema": {"type": "string"}},
    "Retry-After": {"description": "Seconds to wait.", "required": True, "schema": {"type": "integer"}},
    "Accept-Patch": {"description": "The patch media type.", "schema": {"type": "string"}},
}


def _problem_response(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if headers:
        response["headers"] = headers
    return response


RESPONSE_NAMES = {
    "304": "NotModified",
    "400": "BadRequest",
    "404": "NotFound",
    "405": "BulkOnlyPost",
    "409": "Conflict",
    "412": "PreconditionFailed",
    "413": "ContentTooLarge",
    "414": "URITooLong",
    "415": "UnsupportedMediaType",
    "422": "UnprocessableContent",
    "500": "InternalServerError",
    "503": "ServiceUnavailable",
}

RESPONSES: dict[str, Any] = {
    "NotModified": {
        "description": "The ETag in If-None-Match is current; no body.",
        "headers": {
            "ETag": {"$ref": "#/components/headers/ETag-required"},
            "Link": {"$ref": "#/components/headers/Link"},
            "Cache-Control": {"$ref": "#/components/headers/Cache-Control"},
            "X-Cache": {"$ref": "#/components/headers/X-Cache"},
        },
    },
    "BadRequest": _problem_response(
        "Malformed JSON, or a query parameter the resource cannot accept (`errors` names it)."
    ),
    "NotFound": _problem_response("No such item (or the id cannot be one)."),
    "Conflict": _problem_response("A unique index is violated, or a reference rule (DENY) refuses the delete."),
    "PreconditionFailed": _problem_response("The item changed since the ETag in If-Match."),
    "BulkOnlyPost": _problem_response(
        "`_bulk` in place of an id names the bulk endpoint, which takes POST only.",
        {"Allow": {"$ref": "#/components/headers/Allow"}},
    ),
    "ContentTooLarge": _problem_response("The body is larger than the service accepts."),
    "URITooLong": {
        "description": (
            "The request line is longer than the HTTP server in front of the app accepts "
            "(gunicorn's `limit_request_line`, nginx's buffers); its own error page, not problem+json."
        )
    },
    "UnsupportedMediaType": _problem_response("The body is not application/json."),
    "PatchMediaType": _problem_response(
        "The body is neither application/merge-patch+json nor application/json.",
        {"Accept-Patch": {"$ref": "#/components/headers/Accept-Patch"}},
    ),
    "UnprocessableContent": _problem_response(
        "The body does not fit the resource: the Document's validation, unknown or read-only fields, "
        "references to missing documents (`errors` by field, or by index)."
    ),
    "InternalServerError": _problem_response("An unexpected failure (logged; no details are sent)."),
    "ServiceUnavailable": _problem_response(
        "The database did not answer within the request's time budget.",
        {"Retry-After": {"$ref": "#/components/headers/Retry-After"}},
    ),
}
