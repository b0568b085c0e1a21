"""The HTTP layer: parse the request, call reads/writes, render JSON with ETags.

Views know HTTP; the functions they call do not. Every view runs under the
request's database deadline, and every error it meets is rendered as
problem+json by :func:`restengine.errors.handled`, so a host application's
own error handlers never see the API's errors.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson
import pymongo
from flask import Response, current_app, request, url_for
from pymongo.errors import ConnectionFailure, PyMongoError

from restengine import replicas, timing, tracing
from restengine.api import bulk, idempotency, pagination, reads, writes
from restengine.api.access import checked
from restengine.api.budget import DEADLINE, query_time
from restengine.api.caching import CachePolicy, not_modified_headers
from restengine.api.codec import pk_value
from restengine.api.conditional import etag_of, if_match, match, none_match
from restengine.api.filters import parse_filters
from restengine.api.idempotency import Note
from restengine.api.model import conjunction
from restengine.api.operators import EXPENSIVE
from restengine.api.outcome import Phases
from restengine.api.query import list_value, single_value
from restengine.api.routes import BULK_ACTIONS
from restengine.auth.principal import ANONYMOUS, caller_of
from restengine.cache import Entry
from restengine.constants import CACHE_ANSWER, JSON, MERGE_PATCH, RESERVED_PARAMETERS
from restengine.errors import (
    ERROR_SHAPE,
    InputError,
    InvalidParameter,
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    PreconditionFailed,
    Problem,
    UnsupportedMediaType,
    acceptable,
    handled,
)
from restengine.jsonresp import json_bytes_response

if TYPE_CHECKING:
    from restengine.api.registry import Api
    from restengine.api.resource import Resource
    from restengine.api.routes import Route

log = logging.getLogger(__name__)


def _no_content() -> Response:
    response = Response(status=204)
    del response.headers["Content-Type"]
    return response


def _respond(data: bytes, etag: str, headers: dict[str, str], status: int = 200) -> Response:
    """The response for a rendered body; ``304`` when ``If-None-Match`` matches a GET."""
    all_headers = {"ETag": etag, **headers}
    if request.method in ("GET", "HEAD") and none_match(request, etag):
        response = Response(status=304)
        response.headers.update(not_modified_headers(all_headers))
        return response
    return json_bytes_response(data, status, all_headers)


def _with_etag(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    data = orjson.dumps(body)
    return _respond(data, etag_of(data), headers or {}, status)


def _json_body(*accepted: str) -> Any:
    if request.mimetype not in accepted:
        raise UnsupportedMediaType(
            f"Send the body as {' or '.join(accepted)}.",
            headers={"Accept-Patch": MERGE_PATCH} if MERGE_PATCH in accepted else None,
        )
    data = request.get_data(cache=False)  # 413 past MAX_CONTENT_LENGTH
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise Problem(f"The body is not valid JSON: {exc}", status=400, title="Malformed JSON") from None
    where = too_deep(body)
    if where is not None:
        problem = f"nested too deeply (at most {MAX_BODY_DEPTH} levels of lists and objects)"
        errors: dict[str, Any] = {where[-1]: problem} if where else {"": problem}
        for key in reversed(where[:-1]):
            errors = {key: errors}
        raise InputError(errors)
    return body


MAX_BODY_DEPTH = 100
FREE_OFFSET = 1000
"""Documents a page may skip (a profile's offset) before its read counts as expensive: the database reads them all."""
"""Levels of lists and objects in a request body: MongoDB stores no document nested deeper."""


def too_deep(value: Any) -> list[str] | None:
    """Where ``value`` first nests deeper than :data:`MAX_BODY_DEPTH`, as errors name it (the field, or the
    array item and its field), or ``None``. Without recursion: any depth is measured safely."""
    named = 2 if isinstance(value, list) else 1
    pending: list[tuple[Any, int, list[str]]] = [(value, 1, [])]
    while pending:
        current, level, path = pending.pop()
        if isinstance(current, dict):
            children = [(str(key), child) for key, child in current.items()]
        elif isinstance(current, list):
            children = [(str(position), child) for position, child in enumerate(current)]
        else:
            continue
        if level > MAX_BODY_DEPTH:
            return path
        pending.extend((child, level + 1, [*path, key] if len(path) < named else path) for key, child in children)
    return None


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class Views:
    """The API's view functions, bound to one :class:`Api`."""

    def __init__(self, api: Api, cache_policy: CachePolicy) -> None:
        self.api = api
        self.cache_policy = cache_policy

    def guarded(
        self, view: Callable[..., Response], route: Callable[..., Route] | None = None
    ) -> Callable[..., Response]:
        """``view`` under the API's access check and database deadline, its errors rendered as problem+json.

        ``route`` gives the resource route of the view's URL arguments: the
        access check runs here unless the :class:`~restengine.api.access.Guard`
        layer already ran it (an API mounted in a host app has none). Inside
        :func:`restengine.create_app` no outer deadline exists; in a host app
        that sets one, PyMongo keeps the earlier of the two.
        """

        shape = self.api.error_shape

        def run(**kwargs: Any) -> Response:
            if shape is not None:  # a profile's errors in its shape, in a host app (no Mounts layer) too
                request.environ.setdefault(ERROR_SHAPE, shape)
            if not acceptable(request.headers.get("Accept")):
                raise NotAcceptable()
            access = self.api.access
            if route is not None and access is not None and not checked(request.environ):
                where = route(**kwargs)
                if where.resource in self.api.resources:
                    access.check(request.environ, where, request.method)
            if request.method in ("POST", "PUT", "PATCH", "DELETE"):
                return view(**kwargs)  # its phases have their own budgets (see restengine.api.outcome)
            request.environ[DEADLINE] = time.monotonic() + self.api.db_timeout
            with pymongo.timeout(self.api.db_timeout):
                return view(**kwargs)

        run.__name__ = view.__name__
        return handled(run)

    def _resource(self, name: str, allowed: tuple[str, ...]) -> Resource:
        resource = self.api.resources.get(name)
        if resource is None:
            raise NotFound(f"No resource named {name!r}.")
        methods = sorted(m for m in resource.methods if m in allowed)
        if request.method not in methods and request.method != "OPTIONS":
            raise MethodNotAllowed(request.method, methods)
        return resource

    # ------------------------------------------------------------ views

    def index(self) -> Response:
        if request.method == "OPTIONS":
            response = _no_content()
            response.headers["Allow"] = "GET, HEAD, OPTIONS"
            return response
        if request.method not in ("GET", "HEAD"):
            raise MethodNotAllowed(request.method, ("GET", "HEAD"))
        return _with_etag(
            {
                "resources": [
                    {"name": name, "url": url_for(self.api.endpoint("collection"), name=name, _external=True)}
                    for name in sorted(self.api.resources)
                ]
            }
        )

    def _scoped(self, resource: Resource, act: str) -> Resource:
        """``resource`` as this request's caller reaches it with ``act`` (its documents and fields)."""
        return self.api.scoped(resource, request.environ, act)

    def _expandable(self, doc_cls: type[Any]) -> Resource | None:
        """The served resource of a referenced class, as this request's caller may read it."""
        target = self.api.resource_for(doc_cls)
        return None if target is None else self._scoped(target, "read")

    def collection(self, name: str) -> Response:
        resource = self._resource(name, ("GET", "HEAD", "POST"))
        if request.method == "OPTIONS":
            return self._options(resource, ("GET", "HEAD", "POST"))
        if request.method == "POST":
            return self._create(self._scoped(resource, "create"))
        return self._list(self._scoped(resource, "read"))

    def item(self, name: str, item_id: str) -> Response:
        allowed = ("GET", "HEAD", "PUT", "PATCH", "DELETE")
        resource = self._resource(name, allowed)
        try:
            pk = pk_value(resource.doc_cls, item_id)
        except (ValueError, TypeError):
            raise NotFound() from None
        if request.method == "OPTIONS":
            return self._options(resource, allowed)
        if request.method in ("GET", "HEAD"):
            return self._read_item(self._scoped(resource, "read"), pk)
        resource = self._scoped(resource, "delete" if request.method == "DELETE" else "update")
        raw: dict[str, Any] = {}

        def may_have_written() -> None:
            if request.method == "DELETE" and raw:
                self.cache_policy.invalidate_deleted(resource, raw["_id"])
            else:
                self.cache_policy.invalidate(resource)

        phases = self._phases(may_have_written)
        with phases.before():
            raw.update(writes.current(resource, pk))
        representation = reads.decode(resource, raw, resource.exposed)
        tags = if_match(request)
        if tags is not None and not match(tags, etag_of(orjson.dumps(representation))):
            raise PreconditionFailed("The item changed since the ETag in If-Match was issued.")
        if request.method == "DELETE":
            writes.delete(resource, raw, phases, conditional=tags is not None)
            self.cache_policy.invalidate_deleted(resource, raw["_id"])
            return _no_content()
        if request.method == "PUT" and self._put_replaces:
            target = self._input(resource, _json_body(JSON), representation)
            if not isinstance(target, dict):
                raise InputError({"": "must be a JSON object"})
        else:
            patch = self._input(resource, _json_body(MERGE_PATCH, JSON), representation)
            if not isinstance(patch, dict):
                raise InputError({"": "a merge patch must be a JSON object"})
            target = merge_patch(representation, patch)
        with phases.before():
            doc = writes.apply(resource, raw, target, representation)
        writes.save_changes(resource, doc, raw, phases, conditional=tags is not None)
        written = doc.to_mongo().to_dict()
        return self._updated(resource, self._stored(resource, [written["_id"]], [written])[0])

    # ------------------------------------------------------------ what a profile shapes (see restengine.profiles)

    def _read_item(self, resource: Resource, pk: Any) -> Response:
        """A GET of one item, ``resource`` as its caller reads it."""
        fields = reads.parse_fields(resource, list_value(request.args, "fields"))
        expansions = reads.parse_expand(resource, list_value(request.args, "expand"), fields, self._expandable)

        def build() -> tuple[Any, dict[str, str]]:
            item = reads.get_item(resource, pk, fields, expansions)
            if item is None:
                raise NotFound()
            return item, {}

        return self._cached_read(resource, expansions, build, pk=pk)

    @property
    def _put_replaces(self) -> bool:
        """Whether PUT replaces the item (HTTP's meaning); a profile's PUT may update only what it is sent."""
        return True

    def _input(self, resource: Resource, body: Any, current: dict[str, Any] | None = None) -> Any:
        """A write's JSON body as the native representation (a profile translates its own); ``current``: the
        item as it is, for a PUT or PATCH."""
        return body

    def _updated(self, resource: Resource, item: dict[str, Any]) -> Response:
        """The answer to a PUT or PATCH: the item as stored."""
        return _with_etag(item)

    @staticmethod
    def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        """``body`` as JSON, no ETag of its own (a profile's answer that names its own, or none)."""
        return json_bytes_response(orjson.dumps(body), status, headers or {})

    def bulk(self, name: str) -> Response:
        resource = self._resource(name, ("POST",))
        if request.method == "OPTIONS":
            return self._options(resource, ("POST",))
        body = _json_body(JSON)
        access = self.api.access
        if access is not None:  # each kind of operation needs the action it takes on its own
            principal = access.principal(request.environ)
            for act in sorted({BULK_ACTIONS[op] for op in bulk.bulk_operations(body) if op in BULK_ACTIONS}):
                access.require(principal, resource.name, act)

        def encode(target: Resource, raw: dict[str, Any]) -> dict[str, Any]:
            return reads.decode(target, raw, target.exposed)

        def scoped(op: str) -> Resource:
            return self._scoped(resource, BULK_ACTIONS[op])

        phases = self._phases(lambda: self.cache_policy.invalidate(resource))

        def run(note: Note) -> Response:
            with phases.before():
                plan, ordered = bulk.plan_bulk(
                    resource, body, merge_patch, encode, scoped, max_items=self.api.max_batch
                )
            bulk.prepare_run(resource, plan)
            note(lambda: {"outcome": bulk.expected_states(plan)})
            try:
                results = bulk.run_bulk(resource, plan, ordered, phases)
            finally:
                self.cache_policy.invalidate(resource)  # bulk_write sends no MongoEngine signals
            failed = any(r["status"] not in (200, 201, 204) for r in results)
            return json_bytes_response(orjson.dumps({"results": results}), 409 if failed else 200)

        def recover(earlier: Mapping[str, Any], replaying: bool = False) -> Response | None:
            results = bulk.recovered_results(resource, earlier.get("outcome"))
            if results is None:
                return None
            return json_bytes_response(orjson.dumps({"results": results}), 200)

        return self._idempotent(body, phases, run, recover)

    # ------------------------------------------------------------ helpers

    def _options(self, resource: Resource, allowed: tuple[str, ...]) -> Response:
        methods = sorted({m for m in resource.methods if m in allowed} | {"OPTIONS"})
        response = _no_content()
        response.headers["Allow"] = ", ".join(methods)
        return response

    def _phases(self, may_have_written: Callable[[], None]) -> Phases:
        """A write request's phases (see :mod:`.outcome`); sending marks the caller a recent writer."""
        wrote = partial(replicas.wrote, current_app, self.caller)
        return Phases(self.api.db_timeout, self.api.write_timeout, may_have_written, wrote=wrote)

    def _stored(
        self, resource: Resource, pks: list[Any], written: list[dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        """The representations of the documents ``pks`` as stored, read back (one query): what a GET shows.

        ``resource`` is the one the writes went through (an access rule may restrict its documents and fields).
        The writes have succeeded: when a document cannot be read back (deleted meanwhile or out of the
        caller's reach, the request's deadline spent by the write), the response shows ``written``, what was
        written (without it, nothing may be missing).
        """
        found: dict[Any, dict[str, Any]] = {}
        try:
            with pymongo.timeout(self.api.db_timeout):
                query = {"_id": pks[0]} if len(pks) == 1 else {"_id": {"$in": pks}}
                found = {
                    raw["_id"]: raw for raw in resource.collection().find(conjunction(resource.base_filter(), query))
                }
        except PyMongoError as exc:
            if written is None or not (exc.timeout or isinstance(exc, ConnectionFailure)):
                raise
            log.warning("the written %s could not be read back: %s", resource.name, type(exc).__name__)
        if written is None and len(found) < len(pks):
            raise NotFound()
        return [
            reads.decode(resource, found.get(pk) or (written or [])[position], resource.exposed)
            for position, pk in enumerate(pks)
        ]

    def _item_url(self, resource: Resource, item_id: str) -> str:
        return url_for(self.api.endpoint("item"), name=resource.name, item_id=item_id, _external=True)

    def _created(
        self, resource: Resource, pks: list[Any], many: bool, written: list[dict[str, Any]] | None = None
    ) -> Response:
        items = self._stored(resource, pks, written)
        if many:
            return _with_etag({"items": items}, 201)
        return _with_etag(items[0], 201, {"Location": self._item_url(resource, str(items[0]["id"]))})

    def _create(self, resource: Resource) -> Response:
        body = self._input(resource, _json_body(JSON))
        many = isinstance(body, list)
        phases = self._phases(lambda: self.cache_policy.invalidate(resource))

        def run(note: Note) -> Response:
            if many:
                docs = writes.prepare_many(resource, body, phases, max_items=self.api.max_batch)
            else:
                docs = [writes.prepare_create(resource, body, phases)]
            note(lambda: self._new_ids(resource, docs))
            if many:
                writes.insert_many(resource, docs, phases, undone=lambda: self.cache_policy.invalidate(resource))
            else:
                writes.insert(resource, docs[0], phases)
            written = [doc.to_mongo().to_dict() for doc in docs]
            return self._created(resource, [raw["_id"] for raw in written], many, written)

        def recover(earlier: Mapping[str, Any], replaying: bool = False) -> Response | None:
            pks = earlier.get("ids")
            if not pks:
                return None  # the first attempt never got to write
            stored = {raw["_id"] for raw in resource.collection().find({"_id": {"$in": pks}}, {"_id": 1})}
            if len(stored) == len(pks):
                return self._created(resource, pks, many)
            if stored and not replaying:  # a partial array insert its instance did not live to undo
                resource.collection().delete_many({"_id": {"$in": list(stored)}})
                self.cache_policy.invalidate(resource)
            return None

        return self._idempotent(body, phases, run, recover)

    @staticmethod
    def _new_ids(resource: Resource, docs: list[Any]) -> dict[str, Any]:
        """The ids new documents are about to be inserted under, when a retry could find them by these alone.

        Not when one is known only once written (a SequenceField key), nor when one is taken already
        (the insert is then a 409, and finding the document would not mean this request wrote it).
        """
        pks = [doc.to_mongo().get("_id") for doc in docs]
        if None in pks or resource.collection().count_documents({"_id": {"$in": pks}}, limit=1):
            return {}
        return {"ids": pks}

    def _idempotent(
        self, body: Any, phases: Phases, run: Callable[[Note], Response], recover: Callable[..., Response | None]
    ) -> Response:
        """``run`` the write, under the request's ``Idempotency-Key`` when it has one (see :mod:`.idempotency`)."""
        access = self.api.access
        principal = ANONYMOUS if access is None else access.principal(request.environ)
        caller = f"{principal.kind}:{principal.subject or ''}"
        return idempotency.idempotent(self.api.idempotency, caller, body, phases, run, recover, self.api.db_timeout)

    def _list(self, resource: Resource) -> Response:
        args = request.args
        fields = reads.parse_fields(resource, list_value(args, "fields"))
        expansions = reads.parse_expand(resource, list_value(args, "expand"), fields, self._expandable)
        return self._cached_read(resource, expansions, lambda: self._list_body(resource, fields, expansions))

    def _list_body(
        self, resource: Resource, fields: frozenset[str], expansions: list[reads.Expansion]
    ) -> tuple[Any, dict[str, str]]:
        args = request.args
        pairs = list(args.items(multi=True))
        filters = parse_filters(
            resource.doc_cls,
            pairs,
            filterable=resource.filterable,
            hidden=resource.unexposed,
            reserved=RESERVED_PARAMETERS,
        )
        sort = pagination.parse_sort(
            resource.doc_cls, list_value(args, "sort"), sortable=resource.options.sortable, hidden=resource.unexposed
        )
        limit = pagination.parse_limit(
            single_value(args, "limit"), default=resource.options.default_limit, maximum=resource.options.max_limit
        )
        count = single_value(args, "count")
        if count not in (None, "exact", "estimated"):
            raise InvalidParameter("count", "must be exact or estimated")
        codec = pagination.CursorCodec(self.api.secret(), resource.name)
        after = None
        cursor = single_value(args, "cursor")
        if cursor is not None:
            after = pagination.keyset_filter(sort, codec.decode(cursor, sort))
        text = any(name.rpartition("__")[2] in EXPENSIVE for name, _ in pairs if name not in RESERVED_PARAMETERS)
        page = self._page(
            resource, filters, text_operators=text, count=count,
            sort=sort, after=after, limit=limit, fields=fields, expansions=expansions,
        )  # fmt: skip
        headers: dict[str, str] = {}
        next_url = None
        if page.has_more and page.last_raw is not None:
            token = codec.encode(sort, pagination.sort_values(page.last_raw, sort))
            next_url = pagination.next_url(request.base_url, pairs, token)
            headers["Link"] = pagination.link_header(next_url)
        body: dict[str, Any] = {"items": page.items, "next": next_url}
        if page.count is not None:
            body["count"] = page.count
            headers["X-Total-Count"] = str(page.count)
        return body, headers

    def _page(
        self,
        resource: Resource,
        filters: dict[str, Any],
        *,
        text_operators: bool,
        count: str | None,
        skip: int = 0,
        **page: Any,
    ) -> reads.Page:
        """One page of ``resource`` (:func:`reads.list_page`), an expensive one under the expensive-read budgets.

        Expensive: a text operator no index serves (``text_operators``), filters no index narrows down, an
        offset past :data:`FREE_OFFSET`, or a count no index serves. ``count`` is ``exact``/``estimated`` (a
        count no index serves is refused unless the resource allows it), ``affordable`` (a profile's total:
        left out when it would be refused), or ``None``.
        """
        narrowed = conjunction(resource.base_filter(), filters)
        served = resource.index_serves(narrowed)
        costly = text_operators or bool(filters and not served) or skip > FREE_OFFSET
        if count == "affordable":
            count = "estimated" if served or resource.counts_freely else None
            costly = costly or (count is not None and not served)
        elif (count == "exact" or (count == "estimated" and narrowed)) and not served:
            if not resource.counts_freely:
                raise InvalidParameter(
                    "count",
                    "no index serves these filters, so counting reads every document they match "
                    "(filter on an indexed field, or leave count out; a resource's options may allow it: "
                    "expensive=['count'])",
                )
            costly = True
        if costly:
            self.count_expensive()
        where = replicas.list_preference(current_app, request.environ, self.caller)  # see restengine.replicas
        with (
            self.api.slots.hold(self.caller()) if costly else nullcontext(),
            query_time(self.api.query_time, request.environ.get(DEADLINE)) if costly else nullcontext(),
        ):
            return reads.list_page(resource, filters=filters, count=count, skip=skip, read_preference=where, **page)

    def count_expensive(self) -> None:
        """Count an expensive read against its caller's ``RESTENGINE_EXPENSIVE_RATE_LIMIT``; 429 past it."""
        limiter = self.api.limiter
        if limiter is None:
            return
        verdict = limiter.hit(limiter.expensive, self.caller())
        if verdict is not None and not verdict.allowed:
            what = "Too many expensive queries (index-less filters, counts no index serves)"
            problem = verdict.refusal(f"{what}: at most {limiter.expensive.rate}", ", or ask for less")
            problem.headers.update(verdict.headers())
            raise problem

    def caller(self) -> str:
        """Whose expensive queries this request's are: its principal's, else its client address's."""
        access = self.api.access
        principal = access.principal(request.environ) if access is not None else ANONYMOUS
        return caller_of(principal, request.environ)

    def _cached_read(
        self,
        resource: Resource,
        expansions: list[reads.Expansion],
        build: Callable[[], tuple[Any, dict[str, str]]],
        pk: Any = None,
    ) -> Response:
        """A GET answered from the shared cache, or built by ``build`` (and cached) on a miss.

        ``pk``: the primary key of the one document read; ``None`` for a list.
        """

        def render() -> Entry:
            body, extra = build()
            data = orjson.dumps(body)
            etag = extra.pop("ETag", None) or etag_of(data)  # a profile may name its own (Eve's is the item's _etag)
            return Entry(data, etag, extra, 0.0)

        expanded = [e.target for e in expansions]
        plan = self.cache_policy.plan(resource, request.environ, pk=pk, expanded=expanded)
        if plan is None:
            entry = render()
            return _respond(
                entry.body, entry.etag, self.cache_policy.headers(entry, resource.options.cache_control, None)
            )
        if pk is None:
            request.environ[replicas.FILLS_CACHE] = True  # a shared entry: filled from the primary
        with timing.in_cache():
            outcome = self.cache_policy.read(plan, request.environ, render)
        entry = outcome.entry
        request.environ[CACHE_ANSWER] = outcome.status
        tracing.note_cache(outcome.status)
        return _respond(entry.body, entry.etag, self.cache_policy.headers(entry, plan.cache_control, outcome.status))
