"""The operations of a resource: list, create, bulk, get, replace, patch and delete, with every status they answer."""

from __future__ import annotations

import re
from typing import Any

from restengine.api.bulk import BULK_METHODS
from restengine.api.fields import Schema, field_type, ref
from restengine.api.filters import MAX_FILTERS
from restengine.api.openapi.components import BULK_RESULTS, header_refs, responses
from restengine.api.openapi.parameters import list_parameters, read_parameters
from restengine.api.openapi.schemas import Schemas
from restengine.api.resource import Resource
from restengine.constants import JSON, MERGE_PATCH


def _identifier(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


class Operations:
    """Builds resources' path items into one document, naming operations uniquely."""

    def __init__(self, schemas: Schemas) -> None:
        self.schemas = schemas
        self.api = schemas.api
        self._operation_ids: set[str] = set()

    def _operation_id(self, verb: str, resource: Resource) -> str:
        base = f"{verb}_{_identifier(resource.name)}"
        name, n = base, 1
        while name in self._operation_ids:
            n += 1
            name = f"{base}_{n}"
        self._operation_ids.add(name)
        return name

    def resource_paths(self, resource: Resource, api_base: str) -> dict[str, Any]:
        collection = f"{api_base}/{resource.name}"
        tag = [resource.name]
        item_name = self.schemas.read_component(resource)
        methods = resource.methods
        pk_field = resource.doc_cls._fields[resource.pk]
        item_id = {
            "name": "id",
            "in": "path",
            "required": True,
            "description": f"The primary key ({type(pk_field).__name__}).",
            "schema": field_type(pk_field).path_id(pk_field),
        }
        list_name, _ = self.schemas.name(("list", resource.name), f"{item_name}List")
        self.schemas.schemas[list_name] = {
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": ref(item_name), "maxItems": resource.options.max_limit},
                "next": {
                    "anyOf": [{"type": "string", "format": "uri"}, {"type": "null"}],
                    "description": (
                        "The next page's URL; null on the last page. It repeats every parameter of this "
                        "request (filters, sort, fields, expand, limit, count; every value of a repeated one) "
                        "with the next page's cursor: following it alone continues the same query."
                    ),
                },
                "count": {"type": "integer", "minimum": 0, "description": "With ?count= only."},
            },
            "required": ["items", "next"],
            "additionalProperties": False,
        }
        read_params = read_parameters(self.api, resource)
        list_op = {
            "tags": tag,
            "operationId": self._operation_id("list", resource),
            "summary": f"A page of {resource.name}",
            "description": (
                "Filters are `field=value` or `field__operator=value` (at most "
                f"{MAX_FILTERS}); `in`, `nin` and `all` take comma-separated values, repeated or not. "
                "Keyset pagination: follow `next` (or the `Link` header) as it is; it repeats this "
                "request's parameters with the next page's cursor."
            ),
            "parameters": [
                *read_params,
                *list_parameters(resource),
                {"$ref": "#/components/parameters/IfNoneMatch"},
            ],
            "responses": {
                "200": {
                    "description": "A page of items.",
                    "headers": header_refs("ETag-required", "Link", "X-Total-Count", "Cache-Control", "X-Cache"),
                    "content": {JSON: {"schema": ref(list_name)}},
                },
                **responses("304", "400", "406", "414", "422", "500", "503"),
            },
        }
        paths: dict[str, Any] = {collection: {"get": list_op}}
        if "POST" in methods:
            create = self.schemas.write_component(resource, "create")
            created_many, _ = self.schemas.name(("created", resource.name), f"{item_name}Created")
            self.schemas.schemas[created_many] = {
                "type": "object",
                "properties": {"items": {"type": "array", "items": ref(item_name), "minItems": 1}},
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
                "parameters": [{"$ref": "#/components/parameters/IdempotencyKey"}],
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {
                            "schema": {
                                "oneOf": [
                                    ref(create),
                                    {
                                        "type": "array",
                                        "items": ref(create),
                                        "minItems": 1,
                                        "maxItems": self.api.max_batch,
                                    },
                                ]
                            }
                        }
                    },
                },
                "responses": {
                    "201": {
                        "description": "Created: the item (for an object) or `{items}` (for an array).",
                        "headers": header_refs("ETag-required", "Location", "Idempotent-Replayed"),
                        "content": {JSON: {"schema": {"oneOf": [ref(item_name), ref(created_many)]}}},
                    },
                    **responses("400", "406", "409", "413", "414", "415", "422", "500", "503", "504"),
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
                        "headers": header_refs("ETag-required", "Cache-Control", "X-Cache"),
                        "content": {JSON: {"schema": ref(item_name)}},
                    },
                    **responses("304", "400", "404", "405", "406", "414", "500", "503"),
                },
            },
        }
        changed = {
            "description": "The item as it is now stored.",
            "headers": header_refs("ETag-required"),
            "content": {JSON: {"schema": ref(item_name)}},
        }
        write_errors = responses(
            "400", "404", "405", "406", "409", "412", "413", "414", "415", "422", "500", "503", "504"
        )
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
                    "content": {JSON: {"schema": ref(self.schemas.write_component(resource, "replace"))}},
                },
                "responses": {"200": changed, **write_errors},
            }
        if "PATCH" in methods:
            patch = ref(self.schemas.write_component(resource, "patch"))
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
                    **responses("404", "405", "406", "409", "412", "414", "500", "503", "504"),
                },
            }
        paths[f"{collection}/{{id}}"] = item
        return paths

    def _bulk_operation(self, resource: Resource) -> dict[str, Any]:
        pk_field = resource.doc_cls._fields[resource.pk]
        pk = field_type(pk_field).id_input(pk_field)
        create = ref(self.schemas.write_component(resource, "create"))
        replace = ref(self.schemas.write_component(resource, "replace"))
        patch = ref(self.schemas.write_component(resource, "patch"))

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
        results, _ = self.schemas.name(
            ("bulk-results", resource.name), f"{self.schemas.resource_name(resource)}BulkResults"
        )
        self.schemas.schemas[results] = BULK_RESULTS
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
            "parameters": [{"$ref": "#/components/parameters/IdempotencyKey"}],
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
                                    "maxItems": self.api.max_batch,
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
                "200": {
                    "description": "Every operation succeeded.",
                    "headers": header_refs("Idempotent-Replayed"),
                    "content": {JSON: {"schema": ref(results)}},
                },
                "409": {
                    "description": (
                        "Some operation failed in the database (a unique index, ...): results say which; "
                        "in an ordered batch, later ones were not attempted (status null)."
                    ),
                    "content": {JSON: {"schema": ref(results)}},
                },
                **responses("400", "406", "413", "414", "415", "422", "500", "503", "504"),
            },
        }
