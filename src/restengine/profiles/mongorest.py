"""Flask-MongoRest's wire format over the served resources, for clients of a Flask-MongoRest service.

As Flask-MongoRest 0.3 answers (its ``ResourceView`` and ``Resource``):

- URLs end with a slash: ``/api/books/`` and ``/api/books/<id>/`` (without one they work too);
- a list is ``{"data": [...], "has_more": bool}``, paged by ``_skip`` and ``_limit`` (above the resource's
  maximum: 400), ordered by ``_order_by=-published,title``, limited to ``_fields=title,isbn`` (names it
  does not show are ignored, as Flask-MongoRest ignores them; ``_all`` is every field);
- filters are ``field__op=value`` with its operators (``exact``, ``iexact``, ``ne``, ``lt``, ``lte``,
  ``gt``, ``gte``, ``in`` with comma-separated values, ``contains``, ``icontains``, ``startswith``,
  ``istartswith``, ``endswith``, ``iendswith``) and ``field__not__op`` negation where MongoDB has one
  (``not__exact``, ``not__in``) — through the resource's whitelist, as every native filter;
- an item is its fields with ``id`` as a string and date-times as Python's ``isoformat()`` (no zone);
- ``POST`` creates (200 with the item, as Flask-MongoRest answers without a ``uri_prefix``), ``PUT`` on an
  item updates the fields it sends, ``DELETE`` answers ``{}``;
- errors are ``{"error": "..."}``, a body that does not validate ``{"field-errors": {...}}`` with status 400.

A large ``_skip`` is an offset, counted as an expensive read past :data:`restengine.api.views.FREE_OFFSET`.
Flask-MongoRest's bulk update (``PUT`` on a list) is not offered: 405.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import orjson
from flask import Response, request

from restengine.api import pagination, reads
from restengine.api.filters import parse_filters
from restengine.api.operators import EXPENSIVE
from restengine.api.resource import Resource
from restengine.api.views import Views
from restengine.constants import JSON
from restengine.errors import InvalidParameter, Problem
from restengine.jsonresp import json_bytes_response
from restengine.profiles import converted

PARAMETERS = ("_skip", "_limit", "_order_by", "_fields")
NEGATED = {"exact": "ne", "in": "nin"}  # field__not__<op>: the operator MongoDB has for it
VALIDATION = "urn:restengine:problem:validation"


def error_shape(problem: Problem) -> tuple[dict[str, Any], str, int]:
    """Flask-MongoRest's error body: ``field-errors`` (status 400) for a body that does not validate, else ``error``."""
    if problem.type == VALIDATION and isinstance(problem.errors, Mapping) and problem.errors:
        return {"field-errors": _messages(problem.errors)}, JSON, 400
    return {"error": problem.detail or problem.title}, JSON, problem.status


def _messages(errors: Any) -> Any:
    if isinstance(errors, Mapping):
        return {str(key): _messages(value) for key, value in errors.items()}
    if isinstance(errors, (list, tuple)):
        return "; ".join(str(_messages(value)) for value in errors)
    return str(errors)


def _isoformat(text: Any) -> Any:
    """A native date-time (``...Z``) as Flask-MongoRest writes it: ``datetime.isoformat()`` of the naive UTC value."""
    if not isinstance(text, str) or not text.endswith("Z"):
        return text
    try:
        return dt.datetime.fromisoformat(text[:-1]).isoformat()
    except ValueError:
        return text


class MongoRestViews(Views):
    """The API's views in Flask-MongoRest's shapes (see the module): the native ones underneath."""

    def _shown(self, resource: Resource, item: dict[str, Any]) -> dict[str, Any]:
        return converted(resource.doc_cls, item, _isoformat, outgoing=False)

    def _input(self, resource: Resource, body: Any, current: dict[str, Any] | None = None) -> Any:
        if not isinstance(body, dict):
            raise Problem("JSON data must be a dict.", status=400)
        return body

    def item(self, name: str, item_id: str) -> Response:
        response = super().item(name, item_id)
        if request.method == "DELETE" and response.status_code == 204:
            return json_bytes_response(b"{}", 200, {})
        return response

    @property
    def _put_replaces(self) -> bool:
        return False  # Flask-MongoRest's PUT sets the fields it is sent

    def _read_item(self, resource: Resource, pk: Any) -> Response:
        fields = self._fields(resource)

        def build() -> tuple[Any, dict[str, str]]:
            item = reads.get_item(resource, pk, fields)
            if item is None:
                raise Problem("Empty query: no such item.", status=404)
            return self._shown(resource, item), {}

        return self._cached_read(resource, [], build, pk=pk)

    def _updated(self, resource: Resource, item: dict[str, Any]) -> Response:
        return self._json(self._shown(resource, item))

    def _created(
        self, resource: Resource, pks: list[Any], many: bool, written: list[dict[str, Any]] | None = None
    ) -> Response:
        return self._json(self._shown(resource, self._stored(resource, pks, written)[0]))

    @staticmethod
    def _plain(body: Any) -> Response:
        return json_bytes_response(orjson.dumps(body), 200, {})

    def _fields(self, resource: Resource) -> frozenset[str]:
        """``_fields``: the named fields the resource shows (others ignored); ``_all`` or none: every one."""
        text = request.args.get("_fields")
        if not text:
            return resource.exposed
        names = {n.strip() for n in text.split(",")}
        if "_all" in names:
            return resource.exposed
        return frozenset(names & resource.exposed) | {resource.pk}

    def _list(self, resource: Resource) -> Response:
        fields = self._fields(resource)
        return self._cached_read(resource, [], lambda: self._list_body_mongorest(resource, fields))

    def _list_body_mongorest(self, resource: Resource, fields: frozenset[str]) -> tuple[Any, dict[str, str]]:
        args = request.args
        pairs = [(self._native_filter(name), value) for name, value in args.items(multi=True) if name not in PARAMETERS]
        filters = parse_filters(
            resource.doc_cls, pairs, filterable=resource.filterable, hidden=resource.unexposed, reserved=()
        )
        order = args.get("_order_by")
        sort = pagination.parse_sort(
            resource.doc_cls, order or None, sortable=resource.options.sortable, hidden=resource.unexposed
        )
        maximum = resource.options.max_limit
        limit = _count_parameter(args, "_limit", resource.options.default_limit)
        if limit > maximum:
            raise InvalidParameter(
                "_limit",
                f"The limit you set is larger than the maximum limit for this resource (max_limit = {maximum}).",
            )
        skip = _count_parameter(args, "_skip", 0)
        text = any(name.rpartition("__")[2] in EXPENSIVE for name, _ in pairs)
        page = self._page(
            resource, filters, text_operators=text, count=None, skip=skip,
            sort=sort, after=None, limit=max(limit, 1), fields=fields, expansions=[],
        )  # fmt: skip
        return {"data": [self._shown(resource, item) for item in page.items], "has_more": page.has_more}, {}

    @staticmethod
    def _native_filter(name: str) -> str:
        """A Flask-MongoRest filter name as the native one: ``__exact`` is equality, ``__not__op`` its negation."""
        path, _, op = name.rpartition("__")
        if not path:
            return name
        if path.endswith("__not"):
            negated = NEGATED.get(op)
            if negated is None:
                raise InvalidParameter(name, f"{op!r} cannot be negated")
            return f"{path.removesuffix('__not')}__{negated}"
        return path if op == "exact" else name


def _count_parameter(args: Any, name: str, default: int) -> int:
    text = args.get(name)
    if text is None or text == "":
        return default
    if not text.isdigit() or len(text) > 9:
        raise InvalidParameter(name, f'{name} must be a non-negative integer (got "{text[:40]}" instead).')
    return int(text)
