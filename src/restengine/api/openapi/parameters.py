"""The query parameters of a resource: ``fields``, ``expand``, ``sort``, ``limit`` and every filter.

Each is derived from the same checks the views run (``reads.parse_expand``,
``pagination.parse_sort``, ``filters.filter_parameter``): a parameter is
listed when the view would accept it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import mongoengine
from mongoengine.base import BaseField

from restengine.api.fields import Schema, field_type, query_schema
from restengine.api.fields.scalars import NO_NUL
from restengine.api.filters import filter_parameter
from restengine.api.model import embedded_type, item_field, pk_name, public_fields
from restengine.api.openapi.schemas import class_names
from restengine.api.operators import MAX_LIST_ITEMS, MAX_VALUE_LENGTH, OPERATORS, Operator
from restengine.api.pagination import MAX_SORT_KEYS, parse_sort
from restengine.api.reads import parse_expand
from restengine.api.resource import Resource
from restengine.constants import RESERVED_PARAMETERS
from restengine.errors import InvalidParameter

if TYPE_CHECKING:
    from restengine.api.registry import Api

MAX_DEPTH = 4  # embedded documents followed this deep for filter and sort paths
LIST_FORMS = "Repeat the parameter (`?p=a&p=b`), separate values with commas (`?p=a,b`), or both: all values count."


def field_paths(doc_cls: type[Any], prefix: str = "", depth: int = 0) -> Iterator[tuple[str, BaseField]]:
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
            yield from field_paths(inner, f"{path}__", depth + 1)


def read_parameters(api: Api, resource: Resource) -> list[dict[str, Any]]:
    """``fields`` and ``expand``: both the list and the item take them."""
    names = [n for n in public_fields(resource.doc_cls) if n in resource.exposed]
    for cls in class_names(resource.doc_cls)[1:] if resource.with_cls else ():
        names += [n for n in public_fields(cls) if n in resource.exposed and n not in names]
    if "id" not in names:
        names.insert(0, "id")
    params: list[dict[str, Any]] = [
        {
            "name": "fields",
            "in": "query",
            "description": f"Return only these fields (and id). {LIST_FORMS}",
            "style": "form",
            "explode": True,
            "schema": {"type": "array", "items": {"type": "string", "enum": names}, "minItems": 1},
        }
    ]
    expandable = _expandable(api, resource)
    if expandable:
        params.append(
            {
                "name": "expand",
                "in": "query",
                "description": f"Replace these references by the referenced items (one query each). {LIST_FORMS}",
                "style": "form",
                "explode": True,
                "schema": {
                    "type": "array",
                    "items": {"type": "string", "enum": expandable},
                    "minItems": 1,
                    "maxItems": 5,
                    "uniqueItems": True,
                },
            }
        )
    return params


def _expandable(api: Api, resource: Resource) -> list[str]:
    found: list[str] = []
    for path, field in field_paths(resource.doc_cls):
        if field_type(item_field(field)).is_reference:
            param = path.replace("__", ".")
            try:
                parse_expand(resource, param, resource.exposed, api.resource_for)
            except InvalidParameter:
                continue
            found.append(param)
    return found


def list_parameters(resource: Resource) -> list[dict[str, Any]]:
    """``sort``, ``limit``, ``cursor``, ``count`` and the filters of a list."""
    options = resource.options
    sortable = _sortable(resource)
    params: list[dict[str, Any]] = []
    if sortable:
        params.append(
            {
                "name": "sort",
                "in": "query",
                "description": f"Sort keys in order, `-` descending; `id` is always the last tiebreak. {LIST_FORMS}",
                "style": "form",
                "explode": True,
                "schema": {
                    "type": "array",
                    "items": _sort_keys(sortable),
                    "minItems": 1,
                    "maxItems": MAX_SORT_KEYS,
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
    params += _filter_parameters(resource)
    return params


def _sort_keys(sortable: list[str]) -> dict[str, Any]:
    """The sort keys, each ascending and descending (``-``), named for generators (``PUBLISHED_DESC``)."""
    keys = [k for s in sortable for k in (s, f"-{s}")]
    names: list[str] = []
    for key in keys:
        name = re.sub(r"[^A-Za-z0-9]", "_", key.lstrip("-")).upper() + ("_DESC" if key[0] == "-" else "")
        while name in names:  # a field named ``x_desc`` beside ``-x``
            name += "_"
        names.append(name)
    return {"type": "string", "enum": keys, "x-enum-varnames": names}


def _sortable(resource: Resource) -> list[str]:
    keys: list[str] = []
    for path, _ in field_paths(resource.doc_cls):
        try:
            parse_sort(resource.doc_cls, path, sortable=resource.options.sortable, hidden=resource.unexposed)
        except InvalidParameter:
            continue
        keys.append(path)
    return keys


def _filter_parameters(resource: Resource) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for path, _ in field_paths(resource.doc_cls):
        for op in OPERATORS:
            name = path if op.name == "eq" else f"{path}__{op.name}"
            if name in RESERVED_PARAMETERS:
                continue
            try:
                found, parsed = filter_parameter(
                    resource.doc_cls, name, filterable=resource.filterable, hidden=resource.unexposed
                )
            except InvalidParameter:
                continue
            if parsed != op.name or found.name != path:
                continue  # the name means something else (a field named like an operator)
            schema = _filter_schema(found.field, op)
            if schema is None:
                continue
            param: dict[str, Any] = {"name": name, "in": "query", "schema": schema}
            if op.takes_list:
                param.update(style="form", explode=True)
            param["description"] = f"{op.description} {LIST_FORMS}" if op.takes_list else op.description
            params.append(param)
    return params


def _filter_schema(field: BaseField, op: Operator) -> Schema | None:
    """The value of ``field__op`` as ``filters.parse_filters`` parses it; ``None`` when no value fits."""
    if op.name == "exists":
        return {"type": "boolean"}
    if op.name == "size":
        return {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
    if op.text:
        return {"type": "string", "maxLength": MAX_VALUE_LENGTH, "pattern": NO_NUL}
    if op.takes_list:
        item = query_schema(field, in_list=True)
        if item is None:
            return None
        return {"type": "array", "items": item, "minItems": 1, "maxItems": MAX_LIST_ITEMS}
    return query_schema(field, in_list=False)
