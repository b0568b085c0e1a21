"""Eve's wire format (python-eve.org) over the served resources, for clients of an Eve service.

What an Eve client sees, as Eve 2.x documents and answers it:

- a list is ``{"_items": [...], "_links": {"parent", "self", "next", "prev", "last"}, "_meta": {"page",
  "max_results", "total"}}``, hrefs relative to the API root (``books?max_results=2&page=3``);
- an item has ``_id``, its fields, ``_etag`` (also its ``ETag``), ``_links`` (``self``, ``related`` for
  references to served resources; ``parent`` and ``collection`` on its own URL), and ``_created`` /
  ``_updated`` when the class has fields stored under those names; date-times read and write in RFC 1123
  (``Tue, 02 Apr 2013 10:29:13 GMT``);
- ``?where=`` (Eve's MongoDB-style JSON, read through :mod:`restengine.api.jsonquery`: only the fields and
  operators the resource allows, never ``$where`` or ``$regex``), ``?sort=`` (``-a,b`` or ``[("a", -1)]``),
  ``?projection=``, ``?embedded=``, ``?max_results=`` (clamped to the resource's maximum, as Eve clamps) and
  ``?page=``;
- writes need ``If-Match`` with the item's ``_etag`` (428 without, 412 when it changed); a POST takes an
  object or a list and answers ``_status: OK`` with the stored item(s);
- errors are ``{"_status": "ERR", "_error": {"code", "message"}}``, validation failures with ``_issues``
  (per item in ``_items`` for a list) and status 422.

A deep ``page`` is an offset, as in Eve (an expensive read past :data:`restengine.api.views.FREE_OFFSET`);
the ``next`` link also carries a keyset ``cursor``, so a client walking the pages never pays for the offset.
Unlike Eve, ``_meta.total`` and the ``last`` link are left out when no index serves the count (Eve's
``OPTIMIZE_PAGINATION_FOR_SPEED``), and a POST answers the whole stored item (Eve's ``BANDWIDTH_SAVER =
False``; every member Eve's default answer has is there).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from email.utils import format_datetime as http_date
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote

import orjson
from flask import Response, request
from mongoengine import fields as mf

from restengine.api import jsonquery, pagination, reads
from restengine.api.codec import format_datetime
from restengine.api.conditional import etag_of
from restengine.api.model import UnknownField, item_field, resolve
from restengine.api.resource import Resource
from restengine.api.views import MAX_BODY_DEPTH, Views, too_deep
from restengine.constants import JSON
from restengine.errors import InvalidParameter, MethodNotAllowed, NotFound, Problem
from restengine.jsonresp import json_bytes_response
from restengine.profiles import converted

QUERY_PARAMETERS = ("where", "sort", "page", "max_results", "projection", "embedded", "cursor")
"""Eve's own list parameters (and the keyset cursor of its ``next`` links); any other is kept in the links."""

CREATED, UPDATED = "_created", "_updated"


def error_shape(problem: Problem) -> tuple[dict[str, Any], str, int]:
    """Eve's error body: ``_status``, ``_error``, and ``_issues`` (or per-item ``_items``) for a 422."""
    body: dict[str, Any] = {"_status": "ERR"}
    errors = problem.errors
    if problem.status == 422 and isinstance(errors, Mapping) and errors:
        if all(str(key).isdigit() for key in errors):  # a list of items: each one's outcome, as Eve lists them
            count = 1 + max(int(key) for key in errors)
            body["_items"] = [
                {"_status": "ERR", "_issues": _issues(errors[str(i)])} if str(i) in errors else {"_status": "OK"}
                for i in range(count)
            ]
        else:
            body["_issues"] = _issues(errors)
    message = problem.detail or problem.title
    if problem.status == 422 and ("_issues" in body or "_items" in body):
        failed = len(body["_items"]) - [i["_status"] for i in body["_items"]].count("OK") if "_items" in body else 1
        message = f"Insertion failure: {failed} document(s) contain(s) error(s)"
    body["_error"] = {"code": problem.status, "message": message}
    return body, JSON, problem.status


def _issues(errors: Any) -> Any:
    """Validation messages as Eve words them: one string per field, nested objects for embedded documents."""
    if isinstance(errors, Mapping):
        return {("_id" if key == "id" else str(key)): _issues(value) for key, value in errors.items()}
    if isinstance(errors, (list, tuple)):
        return "; ".join(str(_issues(value)) for value in errors)
    return str(errors)


# ---------------------------------------------------------------- representations


def _rfc1123(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    return http_date(stamp.astimezone(dt.UTC).replace(microsecond=0), usegmt=True)


def _iso(text: Any) -> Any:
    """An RFC 1123 date-time (as Eve clients send them) as ISO 8601; anything else as it is."""
    if not isinstance(text, str) or "," not in text:
        return text
    try:
        stamp = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return text
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(dt.UTC).replace(tzinfo=None)
    return stamp.isoformat() + "Z"


def _renamed(doc_cls: type[Any]) -> dict[str, str]:
    """Attribute name -> Eve's meta name, for fields stored as ``_created`` / ``_updated``."""
    return {name: field.db_field for name, field in doc_cls._fields.items() if field.db_field in (CREATED, UPDATED)}


class EveViews(Views):
    """The API's views in Eve's shapes (see the module): the native ones underneath."""

    # ------------------------------------------------------------ shapes

    def _eve_item(
        self, resource: Resource, native: dict[str, Any], fields: frozenset[str] | None = None
    ) -> dict[str, Any]:
        """A native item (every field the caller may read) as Eve shows it, limited to ``fields``."""
        etag = etag_of(orjson.dumps(native)).strip('"')
        shown = converted(resource.doc_cls, native, _rfc1123, outgoing=True)
        renamed = _renamed(resource.doc_cls)
        item: dict[str, Any] = {"_id": native.get("id")}
        for name, value in shown.items():
            if name == "id" or (fields is not None and name not in fields and name not in renamed):
                continue
            item[renamed.get(name, name)] = value
        item["_etag"] = etag
        links: dict[str, Any] = {"self": {"title": resource.doc_cls.__name__, "href": f"{resource.name}/{item['_id']}"}}
        related = self._related(resource, native, fields)
        if related:
            links["related"] = related
        item["_links"] = links
        return item

    def _related(self, resource: Resource, native: dict[str, Any], fields: frozenset[str] | None) -> dict[str, Any]:
        """Links to the referenced items of served resources, as Eve's ``data_relation`` gives them."""
        related: dict[str, Any] = {}
        for name, field in resource.doc_cls._fields.items():
            value = native.get(name)
            if isinstance(value, dict):  # embedded: the referenced item in place of its id
                value = value.get("id")
            if not isinstance(field, mf.ReferenceField) or not isinstance(value, str):
                continue
            if fields is not None and name not in fields:
                continue
            target = self.api.resource_for(field.document_type)
            if target is not None:
                related[name] = {"title": target.doc_cls.__name__, "href": f"{target.name}/{value}"}
        return related

    def _embedded_items(self, item: dict[str, Any], expansions: list[reads.Expansion]) -> None:
        """Embedded (expanded) references in Eve's shape: ``_id`` and the referenced item's fields."""
        for expansion in expansions:
            name = expansion.path.attr_path[0]
            value = item.get(name)
            if isinstance(value, dict):
                shown = converted(expansion.target.doc_cls, value, _rfc1123, outgoing=True)
                item[name] = {"_id": shown.pop("id", None), **shown}

    def _input(self, resource: Resource, body: Any, current: dict[str, Any] | None = None) -> Any:
        """An Eve client's body as the native one: ``_id`` is ``id``, dates in RFC 1123 become ISO 8601, meta
        fields (``_etag``, ``_links``, ``_status``) are dropped, and the fields stored as ``_created`` and
        ``_updated`` are kept as Eve keeps them: set when the item is created, ``_updated`` on every write."""
        if isinstance(body, list):
            return [self._input(resource, part) for part in body]
        if not isinstance(body, dict):
            return body
        renamed = _renamed(resource.doc_cls)
        names = {str(stored): name for name, stored in renamed.items()}
        native: dict[str, Any] = {}
        for key, value in body.items():
            if key in ("_etag", "_links", "_status") or names.get(str(key)) is not None:
                continue  # Eve's own members; the client does not set the meta dates
            native["id" if key == "_id" else str(key)] = value
        native = converted(resource.doc_cls, native, _iso, outgoing=False)
        now = format_datetime(dt.datetime.now(dt.UTC))
        for name, stored in renamed.items():
            if stored == UPDATED or current is None:
                native[name] = now
            elif request.method == "PUT":
                native[name] = current.get(name)  # a replacement keeps the creation date
        return native

    # ------------------------------------------------------------ views

    def index(self) -> Response:
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            raise MethodNotAllowed(request.method, ("GET", "HEAD"))
        children = [
            {"href": name, "title": name} for name in self.api.resources
        ]  # as registered, as Eve lists its domain
        return self._json({"_links": {"child": children}})

    def item(self, name: str, item_id: str) -> Response:
        if request.method in ("PUT", "PATCH", "DELETE") and name in self.api.resources:
            header = request.headers.get("If-Match")
            if header is None:
                raise Problem("To edit a document its etag must be provided using the If-Match header", status=428)
            # Eve clients send the bare _etag; the native check compares quoted entity tags.
            request.environ["HTTP_IF_MATCH"] = ", ".join(
                tag if tag.startswith(('"', "W/")) or tag == "*" else f'"{tag}"'
                for tag in (t.strip() for t in header.split(","))
                if tag
            )
        return super().item(name, item_id)

    def _read_item(self, resource: Resource, pk: Any) -> Response:
        fields, expansions = self._shape_parameters(resource)

        def build() -> tuple[Any, dict[str, str]]:
            native = reads.get_item(resource, pk, resource.exposed, expansions)
            if native is None:
                raise NotFound()
            item = self._eve_item(resource, native, fields)
            self._embedded_items(item, expansions)
            item["_links"]["parent"] = {"title": "home", "href": "/"}
            item["_links"]["collection"] = {"title": resource.name, "href": resource.name}
            return item, {"ETag": f'"{item["_etag"]}"'}

        return self._cached_read(resource, expansions, build, pk=pk)

    def _updated(self, resource: Resource, item: dict[str, Any]) -> Response:
        shown = {**self._eve_item(resource, item), "_status": "OK"}
        return self._json(shown, headers={"ETag": f'"{shown["_etag"]}"'})

    def _created(
        self, resource: Resource, pks: list[Any], many: bool, written: list[dict[str, Any]] | None = None
    ) -> Response:
        items = [{**self._eve_item(resource, item), "_status": "OK"} for item in self._stored(resource, pks, written)]
        if many:
            return self._json({"_status": "OK", "_items": items}, 201)
        return self._json(items[0], 201, {"ETag": f'"{items[0]["_etag"]}"'})

    @staticmethod
    def _eve_json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return json_bytes_response(orjson.dumps(body), status, headers or {})

    # ------------------------------------------------------------ lists

    def _shape_parameters(self, resource: Resource) -> tuple[frozenset[str] | None, list[reads.Expansion]]:
        """``?projection=`` (the fields shown; ``None``: all) and ``?embedded=`` (the references expanded)."""
        args = request.args
        fields = None
        if "projection" in args:
            fields = jsonquery.parse_projection(resource, _json_parameter(args, "projection"), "projection")
        embedded = _json_parameter(args, "embedded") if "embedded" in args else {}
        if not isinstance(embedded, dict):
            raise InvalidParameter("embedded", 'expected {"field": 1, ...}')
        names = [str(name).replace(".", "__") for name, wanted in embedded.items() if wanted]
        shown = resource.exposed if fields is None else fields
        expansions = reads.parse_expand(resource, ",".join(names), shown, self._expandable) if names else []
        return fields, expansions

    def _list(self, resource: Resource) -> Response:
        fields, expansions = self._shape_parameters(resource)
        return self._cached_read(resource, expansions, lambda: self._list_body_eve(resource, fields, expansions))

    def _list_body_eve(
        self, resource: Resource, fields: frozenset[str] | None, expansions: list[reads.Expansion]
    ) -> tuple[Any, dict[str, str]]:
        args = request.args
        where = _json_parameter(args, "where") if "where" in args else {}
        filters = jsonquery.parse_query(resource, _dates_in_query(resource.doc_cls, where), "where") if where else {}
        sort = _parse_sort(resource, args.get("sort"))
        max_results = _positive(args, "max_results", resource.options.default_limit)
        max_results = min(max_results, resource.options.max_limit)
        page = _positive(args, "page", 1)
        codec = pagination.CursorCodec(self.api.secret(), resource.name)
        after = None
        if "cursor" in args:
            after = pagination.keyset_filter(sort, codec.decode(args["cursor"], sort))
        skip = 0 if after is not None else (page - 1) * max_results
        found = self._page(
            resource, filters, text_operators=False, count="affordable", skip=skip,
            sort=sort, after=after, limit=max_results, fields=resource.exposed, expansions=expansions,
        )  # fmt: skip
        items = []
        for native in found.items:
            item = self._eve_item(resource, native, fields)
            self._embedded_items(item, expansions)
            items.append(item)
        links = _page_links(resource, args, page, max_results, found, sort, codec)
        body: dict[str, Any] = {"_items": items, "_links": links, "_meta": {"page": page, "max_results": max_results}}
        headers: dict[str, str] = {}
        if found.count is not None:
            body["_meta"]["total"] = found.count
            headers["X-Total-Count"] = str(found.count)
        return body, headers


def _page_links(
    resource: Resource,
    args: Any,
    page: int,
    max_results: int,
    found: reads.Page,
    sort: list[pagination.SortKey],
    codec: pagination.CursorCodec,
) -> dict[str, Any]:
    """Eve's ``_links`` of a page: hrefs relative to the API root, parameters in Eve's order; ``next`` carries the
    keyset cursor of the page's last item in ``sort``."""
    default = resource.options.default_limit

    def href(at: int, cursor: str | None = None) -> str:
        parts = [f"max_results={max_results}"] if max_results != default else []
        parts += [f"{key}={args[key]}" for key in ("where", "sort") if args.get(key)]
        if at > 1:
            parts.append(f"page={at}")
        parts += [f"{k}={v}" for k, v in args.items(multi=True) if k not in QUERY_PARAMETERS]
        if cursor is not None:
            parts.append(f"cursor={cursor}")
        return resource.name + ("?" + "&".join(parts) if parts else "")

    links: dict[str, Any] = {
        "parent": {"title": "home", "href": "/"},
        "self": {"title": resource.name, "href": href(page)},
    }
    if found.has_more and found.last_raw is not None:
        cursor = codec.encode(sort, pagination.sort_values(found.last_raw, sort))
        links["next"] = {"title": "next page", "href": href(page + 1, cursor)}
        if found.count is not None:
            last = max(1, math.ceil(found.count / max_results))
            links["last"] = {"title": "last page", "href": href(last)}
    if page > 1:
        links["prev"] = {"title": "previous page", "href": href(page - 1)}
    return links


def _json_parameter(args: Any, name: str, text: str | None = None) -> Any:
    """The JSON value of query parameter ``name`` (or ``text``): 400 unless it parses and nests at most
    :data:`~restengine.api.views.MAX_BODY_DEPTH` levels (what reads it next recurses)."""
    try:
        value = orjson.loads(args[name] if text is None else text)
    except orjson.JSONDecodeError:
        raise InvalidParameter(name, 'expected JSON, e.g. {"title": 1}') from None
    if too_deep(value) is not None:
        raise InvalidParameter(name, f"nested too deeply (at most {MAX_BODY_DEPTH} levels)")
    return value


def _dates_in_query(doc_cls: type[Any], query: Any, dated: bool = False) -> Any:
    """A ``where`` with the RFC 1123 date-times Eve clients send for date-time fields read as ISO 8601 (the
    values of other fields are left as they are: a title may look like a date)."""
    if isinstance(query, list):
        return [_dates_in_query(doc_cls, value, dated) for value in query]
    if not isinstance(query, dict):
        return _iso(query) if dated else query
    out = {}
    for key, value in query.items():
        is_date = dated
        if not str(key).startswith("$"):
            try:
                field = item_field(resolve(doc_cls, "id" if key == "_id" else str(key).replace(".", "__")).field)
            except UnknownField:
                field = None  # refused by the query's reader
            is_date = isinstance(field, (mf.DateTimeField, mf.ComplexDateTimeField))
        out[key] = _dates_in_query(doc_cls, value, is_date)
    return out


def _parse_sort(resource: Resource, text: str | None) -> list[pagination.SortKey]:
    """Eve's ``?sort=``: ``-pages,title``, or the list form ``[("pages", -1)]`` (Python or JSON quoting)."""
    if text is None or not text.strip():
        return list(pagination.DEFAULT_SORT)
    text = unquote(text).strip()
    if text.startswith("["):
        spec = _json_parameter({}, "sort", text.replace("(", "[").replace(")", "]").replace("'", '"'))
        return jsonquery.parse_sort(resource, spec, "sort")
    return pagination.parse_sort(resource.doc_cls, text, sortable=resource.options.sortable, hidden=resource.unexposed)


def _positive(args: Any, name: str, default: int) -> int:
    text = args.get(name)
    if text is None:
        return default
    if not text.isdigit() or len(text) > 9 or int(text) < 1:
        raise InvalidParameter(name, "expected a positive integer")
    return int(text)
