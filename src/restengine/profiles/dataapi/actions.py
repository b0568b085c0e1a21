"""The Data API's actions, each a thin view over the native read and write functions.

Reads are one query each under the request's deadline (an expensive one under the native lists' budget);
writes go through :mod:`restengine.api.writes` as the native POST, PATCH, PUT and DELETE do, with their phases,
validation, hooks, signals and cache invalidation.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Collection, Iterator
from typing import TYPE_CHECKING, Any

import orjson
import pymongo
from bson import json_util
from bson.json_util import JSONMode
from flask import Flask, Response, request
from pymongo.errors import OperationFailure

from restengine.api import jsonquery, pagination, reads, writes
from restengine.api.budget import DEADLINE, query_time
from restengine.api.model import conjunction
from restengine.api.outcome import Phases
from restengine.api.views import Views
from restengine.constants import ALL_METHODS
from restengine.errors import (
    ERROR_SHAPE,
    Conflict,
    Forbidden,
    InvalidParameter,
    MethodNotAllowed,
    NotFound,
    PreconditionFailed,
    Problem,
    database_cause,
    handled,
    to_problem,
)
from restengine.profiles import api_key_as_bearer
from restengine.profiles.dataapi import openapi
from restengine.profiles.dataapi.bodies import (
    EJSON,
    JSON,
    Call,
    Shown,
    as_document,
    ejson_options,
    from_ejson,
    plain,
    plain_output,
    projection,
    read_body,
    response_format,
    typed_document,
    with_id,
)
from restengine.profiles.dataapi.pipeline import Pipeline
from restengine.profiles.dataapi.shape import error_shape
from restengine.profiles.dataapi.updates import apply_changes, equalities, parse_update

if TYPE_CHECKING:
    from restengine.api.registry import Api
    from restengine.api.resource import Resource

log = logging.getLogger(__name__)

EXTENSION = "restengine.data_api"  # app.extensions key of the DataApi
ACTIONS = (
    "findOne",
    "find",
    "insertOne",
    "insertMany",
    "updateOne",
    "updateMany",
    "replaceOne",
    "deleteOne",
    "deleteMany",
    "aggregate",
)
READS = ("findOne", "find", "aggregate")  # the rest write (what rate limits count as writes)
RETRIES = 20
"""Compare-and-set attempts on one document that other writers keep changing (each round, one of them wins:
a handful of concurrent writers of one document need as many rounds), with a short random pause between."""


class DataApi:
    """The Data API's actions under ``base_path`` (``/app/data-abcde/endpoint/data/v1``) over ``api``'s resources.

    ``aggregate``: the resource names ``aggregate`` may run on (``*``: all); none by default.
    """

    def __init__(self, api: Api, base_path: str, *, aggregate: Collection[str] = ()) -> None:
        self.api = api
        self.base_path = base_path.rstrip("/")
        self.aggregate = frozenset(aggregate)
        self._views = Views(api, api.cache_policy)  # the native API's expensive-read accounting
        self._actions: dict[str, Callable[[Call, Resource], dict[str, Any]]] = {
            "findOne": self._find_one,
            "find": self._find,
            "insertOne": self._insert_one,
            "insertMany": self._insert_many,
            "updateOne": lambda call, resource: self._update(call, resource, many=False),
            "updateMany": lambda call, resource: self._update(call, resource, many=True),
            "replaceOne": self._replace_one,
            "deleteOne": lambda call, resource: self._delete(call, resource, many=False),
            "deleteMany": lambda call, resource: self._delete(call, resource, many=True),
            "aggregate": self._aggregate,
        }

    def init_app(self, app: Flask) -> None:
        """Serve ``POST <base>/action/<action>``; every other method there is a 405 in the Data API's shape."""
        view = handled(self._view)
        view.__name__ = "data_api_action"
        app.add_url_rule(
            f"{self.base_path}/action/<action>", "restengine_data_api_action", view, methods=list(ALL_METHODS)
        )
        app.extensions[EXTENSION] = self
        if self.openapi_paths not in self.api.openapi_extensions:
            self.api.openapi_extensions.append(self.openapi_paths)
            self.api.version += 1  # the OpenAPI document is built again, with these paths

    error_shape = staticmethod(error_shape)
    """``Problem`` -> the Data API's error body, its media type and status (see :mod:`.shape`)."""

    # ------------------------------------------------------------ the view

    def _view(self, action: str) -> Response:
        """Parse one action's request (method, ``Accept``, body, ``collection``), run it, render its result.

        The body is read as EJSON only once the collection is known: its UUIDs are read as that collection
        stores them. Every error is rendered by :func:`restengine.errors.handled` in the Data API's shape.
        """
        environ = request.environ
        environ.setdefault(ERROR_SHAPE, error_shape)  # the Mounts layer sets it; a host app without it gets it here
        api_key_as_bearer(environ)  # what the Mounts layer does, for a host app without it
        if request.method == "OPTIONS":
            response = Response(status=204)
            del response.headers["Content-Type"]
            response.headers["Allow"] = "OPTIONS, POST"
            return response
        if request.method != "POST":
            raise MethodNotAllowed(request.method, ("POST",))
        run = self._actions.get(action)
        if run is None:
            raise NotFound(f"No action named {action[:100]!r}: the Data API's are {', '.join(ACTIONS)}.")
        ejson_out = response_format(request.headers.get("Accept")) == EJSON
        body = read_body()
        call = Call(action, body, ejson_out)
        call.check_members()
        resource = self._target(call)
        call.body = from_ejson(body, ejson_options(resource, JSONMode.RELAXED))  # its UUIDs as the resource's
        environ[DEADLINE] = time.monotonic() + self.api.db_timeout
        result = run(call, resource)
        if ejson_out:
            data = json_util.dumps(result, json_options=ejson_options(resource, JSONMode.CANONICAL))
            return Response(data, status=200, mimetype=EJSON)
        return Response(orjson.dumps(plain_output(result)), status=200, mimetype=JSON)

    def _target(self, call: Call) -> Resource:
        """The served resource ``collection`` names in ``database``; 404 for any other (``dataSource``: any name).

        ``dataSource`` named a cluster linked to an App Services app; RestEngine serves one database of one
        deployment, so any non-empty name is accepted. ``collection`` is a served resource's collection name
        or its URL name (the URL name wins, and a collection shared by several resources is its base class's).
        """
        call.text("dataSource")
        database = call.text("database")
        collection = call.text("collection")
        resource = self._resource_named(collection)
        if resource is None or resource.collection().database.name != database:
            raise NotFound(f"No collection {collection[:100]!r} of database {database[:100]!r} is served here.")
        return resource

    def _resource_named(self, collection: str) -> Resource | None:
        resources = self.api.resources
        if collection in resources:
            return resources[collection]
        sharing = [r for r in resources.values() if r.collection_name == collection]
        sharing.sort(key=lambda r: ("." in r.doc_cls._class_name, r.name))
        return sharing[0] if sharing else None

    def _reach(self, resource: Resource, *acts: str) -> dict[str, Resource]:
        """``resource`` as the caller reaches it for each action, once the policy allows every one of them.

        The same decision as the native API's: a missing right is 401 for anonymous callers, else 403.
        """
        access = self.api.access
        if access is not None:
            principal = access.principal(request.environ)
            for act in acts:
                access.require(principal, resource.name, act)
        return {act: self.api.scoped(resource, request.environ, act) for act in acts}

    @staticmethod
    def _allow(resource: Resource, method: str, what: str) -> None:
        """Refuse what the resource's ``methods`` option does not serve natively (``POST``, ``PATCH``...)."""
        if method not in resource.methods:
            raise Forbidden(f"{resource.name} does not take {what}.")

    @contextlib.contextmanager
    def _budget(self, costly: bool) -> Iterator[None]:
        """An expensive read (a filter no index serves) under the native lists' rules: counted against the
        caller's expensive-query rate, one of its slots, and ``RESTENGINE_QUERY_TIME_MS`` of database time."""
        if not costly:
            yield
            return
        self._views.count_expensive()
        with self.api.slots.hold(self._views.caller()), query_time(self.api.query_time, request.environ[DEADLINE]):
            yield

    @contextlib.contextmanager
    def _reading(self, costly: bool) -> Iterator[None]:
        """A read action's database work: the request's deadline, as native reads have it."""
        with pymongo.timeout(self.api.db_timeout), self._budget(costly):
            yield

    def _phases(self, resource: Resource) -> Phases:
        """The native write phases: the same budgets, and the caller marked a recent writer (its native lists then
        read the primary, see :mod:`restengine.replicas`)."""
        return self._views._phases(lambda: self.api.cache_policy.invalidate(resource))

    @staticmethod
    def _where(call: Call, resource: Resource) -> tuple[dict[str, Any], bool]:
        """The filter of the documents an action works on (the caller's scope included), and whether no index
        serves it (an expensive read, see :meth:`_budget`)."""
        filters = jsonquery.parse_query(resource, call.filter(), "filter")
        narrowed = conjunction(resource.base_filter(), filters)
        return narrowed, bool(filters) and not resource.index_serves(narrowed)

    def _documents(self, call: Call, resource: Resource, raws: list[dict[str, Any]], shown: Shown) -> list[Any]:
        if call.ejson_out:
            return [typed_document(resource, raw, shown) for raw in raws]
        return [with_id(reads.decode(resource, raw, shown.fields), shown) for raw in raws]

    # ------------------------------------------------------------ reads

    def _find_one(self, call: Call, resource: Resource) -> dict[str, Any]:
        reader = self._reach(resource, "read")["read"]
        query, costly = self._where(call, reader)
        shown = projection(reader, call.member("projection", dict, "an object"))
        with self._reading(costly):
            raw = reader.collection().find_one(query, reader.projection_for(shown.fields))
        return {"document": None if raw is None else self._documents(call, reader, [raw], shown)[0]}

    def _find(self, call: Call, resource: Resource) -> dict[str, Any]:
        """``find``: at most ``limit`` documents after ``skip``, in ``sort`` order (then ``_id``).

        ``limit`` is at most the resource's page size (``max_limit``); without it, more matching documents than
        that is a 400 rather than a silently cut answer. A ``skip`` past one page reads what it skips: it counts
        as an expensive read, as a filter no index serves does. Read from the primary, not where
        ``RESTENGINE_LIST_READ_PREFERENCE`` sends native lists: a Data API client treats these actions as the
        database itself (a find then an update by what it found) and has no conditional request to ask for a
        fresh read.
        """
        reader = self._reach(resource, "read")["read"]
        query, costly = self._where(call, reader)
        shown = projection(reader, call.member("projection", dict, "an object"))
        spec = call.member("sort", (dict, list), "an object")
        sort = jsonquery.parse_sort(reader, spec, "sort") if spec else list(pagination.DEFAULT_SORT)
        limit, skip, most = call.count("limit"), call.count("skip"), reader.options.max_limit
        if limit > most:
            raise InvalidParameter("limit", f"at most {most} documents per request; page with skip")
        with self._reading(costly or skip > most):
            cursor = reader.collection().find(
                query, reader.projection_for(shown.fields), sort=sort, skip=skip, limit=limit or most + 1
            )
            raws = list(cursor)
        if not limit and len(raws) > most:
            raise InvalidParameter("limit", f"more than {most} documents match: ask for at most {most} with limit")
        return {"documents": self._documents(call, reader, raws, shown)}

    def _aggregate(self, call: Call, resource: Resource) -> dict[str, Any]:
        """``aggregate`` on a resource ``RESTENGINE_DATA_API_AGGREGATE`` lists; always an expensive read.

        A pipeline the database cannot run on these documents (``$size`` of a string, a division by zero) is
        the client's 400; the server's message is logged, not sent (it may name stored fields).
        """
        if "*" not in self.aggregate and resource.name not in self.aggregate:
            raise Forbidden(f"aggregate is not enabled on {resource.name} (RESTENGINE_DATA_API_AGGREGATE).")
        reader = self._reach(resource, "read")["read"]
        cap = reader.options.max_limit
        pipeline = Pipeline(reader, self._readable, cap).build(call.member("pipeline", list, "a list", required=True))
        try:
            with self._reading(True):
                documents = list(reader.collection().aggregate(pipeline))
        except OperationFailure as exc:
            if database_cause(exc) is not None:
                raise
            log.info("pipeline on %s refused by the database: code %s: %s", reader.name, exc.code, exc)
            raise InvalidParameter(
                "pipeline", f"the database cannot run it on these documents (code {exc.code})"
            ) from None
        if len(documents) > cap:
            raise InvalidParameter("pipeline", f"more than {cap} results: end the pipeline with a $limit of {cap}")
        return {"documents": documents}

    def _readable(self, collection: str) -> Resource:
        """A ``$lookup``'s ``from``: a served resource the caller may read, as it reaches it."""
        target = self._resource_named(collection)
        if target is None:
            raise InvalidParameter("pipeline", f"$lookup from {collection!r}: no such collection is served")
        return self._reach(target, "read")["read"]

    # ------------------------------------------------------------ writes

    def _insert_one(self, call: Call, resource: Resource) -> dict[str, Any]:
        self._allow(resource, "POST", "inserts")
        creator = self._reach(resource, "create")["create"]
        body = as_document(plain(call.member("document", dict, "an object", required=True), "document"), "document")
        phases = self._phases(creator)
        doc = writes.prepare_create(creator, body, phases)
        writes.insert(creator, doc, phases)
        return {"insertedId": doc.to_mongo()["_id"]}

    def _insert_many(self, call: Call, resource: Resource) -> dict[str, Any]:
        """``insertMany``: all of ``documents`` or none, at most ``RESTENGINE_MAX_BATCH`` of them."""
        self._allow(resource, "POST", "inserts")
        creator = self._reach(resource, "create")["create"]
        bodies = call.member("documents", list, "a list of objects", required=True)
        if not bodies:
            raise InvalidParameter("documents", "must hold at least one document")
        if len(bodies) > self.api.max_batch:
            raise InvalidParameter("documents", f"at most {self.api.max_batch} per request; nothing was inserted")
        if not all(isinstance(body, dict) for body in bodies):
            raise InvalidParameter("documents", "each document must be an object")
        prepared = [as_document(plain(body, "documents"), "documents") for body in bodies]
        phases = self._phases(creator)
        docs = writes.prepare_many(creator, prepared, phases, max_items=self.api.max_batch)
        writes.insert_many(creator, docs, phases, undone=lambda: self.api.cache_policy.invalidate(creator))
        return {"insertedIds": [doc.to_mongo()["_id"] for doc in docs]}

    def _matching(self, resource: Resource, call: Call, many: bool) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The filter of a write action, and the stored documents it changes: the first match, or every one (at
        most the batch size: more is a 400 and nothing is written)."""
        query, costly = self._where(call, resource)
        most = self.api.max_batch if many else 1
        with self._phases(resource).before(), self._budget(costly):
            raws = list(resource.collection().find(query, limit=most + 1))
        if len(raws) > most and many:
            problem = f"more than {most} documents match; at most {most} per request, nothing was changed"
            raise InvalidParameter("filter", problem)
        return query, raws[:most]

    def _update(self, call: Call, resource: Resource, *, many: bool) -> dict[str, Any]:
        """``updateOne``/``updateMany``: each matching document changed as a PATCH changes it.

        The operators are applied to the document as the API shows it, which is then validated and saved
        through the native write path (``clean()``, hooks, signals) with compare-and-set, so a concurrent
        change is re-read and the update applied again to it, never lost. With several documents, every one is
        validated before the first is saved. ``upsert``: see :meth:`_upsert`.
        """
        self._allow(resource, "PATCH", "updates")
        reached = self._reach(resource, "update", *self._upserting(call, resource))
        updater = reached["update"]
        changes = parse_update(updater, call.member("update", dict, "an object", required=True))
        query, raws = self._matching(updater, call, many)
        if not raws and "create" in reached:
            body = apply_changes(equalities(call.filter()), changes)
            return {"matchedCount": 0, "modifiedCount": 0, "upsertedId": self._upsert(reached["create"], body)}
        matched, modified = self._change_all(updater, query, raws, lambda shown: apply_changes(shown, changes))
        return {"matchedCount": matched, "modifiedCount": modified}

    def _upserting(self, call: Call, resource: Resource) -> tuple[str, ...]:
        """``("create",)`` when the call may insert (``upsert``): it then needs what an insert needs too."""
        if not call.member("upsert", bool, "true or false"):
            return ()
        self._allow(resource, "POST", "inserts (upsert)")
        return ("create",)

    def _replace_one(self, call: Call, resource: Resource) -> dict[str, Any]:
        """``replaceOne``: the matching document replaced as a PUT replaces it (hidden and read-only fields kept).

        ``_id`` may be repeated, not changed. ``upsert`` inserts the replacement, with the filter's ``_id``.
        """
        self._allow(resource, "PUT", "replacements")
        reached = self._reach(resource, "update", *self._upserting(call, resource))
        replacement = plain(call.member("replacement", dict, "an object", required=True), "replacement")
        if any(str(key).startswith("$") for key in replacement):
            raise InvalidParameter("replacement", "takes a document, not update operators (use updateOne)")
        query, raws = self._matching(reached["update"], call, False)
        if not raws and "create" in reached:
            body = dict(replacement)
            found = equalities(call.filter())
            if "_id" not in body and "_id" in found:
                body["_id"] = found["_id"]
            return {"matchedCount": 0, "modifiedCount": 0, "upsertedId": self._upsert(reached["create"], body)}

        def replaced(shown: dict[str, Any]) -> dict[str, Any]:
            if "_id" in replacement and str(replacement["_id"]) != shown["id"]:
                raise InvalidParameter("replacement", "_id cannot be changed")
            kept = {key: shown[key] for key in ("id", "_cls") if key in shown}
            return {**{k: v for k, v in replacement.items() if k != "_id"}, **kept}

        matched, modified = self._change_all(reached["update"], query, raws, replaced)
        return {"matchedCount": matched, "modifiedCount": modified}

    def _upsert(self, creator: Resource, body: dict[str, Any]) -> Any:
        """Insert what an upsert that matched nothing makes, through the create path (as ``insertOne``)."""
        phases = self._phases(creator)
        doc = writes.prepare_create(creator, as_document(body, "upsert"), phases)
        writes.insert(creator, doc, phases)
        return doc.to_mongo()["_id"]

    def _change_all(
        self,
        resource: Resource,
        query: dict[str, Any],
        raws: list[dict[str, Any]],
        change: Callable[[dict[str, Any]], Any],
    ) -> tuple[int, int]:
        """Apply ``change`` (representation -> new representation) to each of ``raws`` (which ``query`` matched):
        (matched, modified)."""
        planned = [self._planned(resource, raw, change) for raw in raws]
        docs = [doc for _, doc in planned if doc is not None]
        if len(docs) > 1:  # all or nothing as far as validation goes
            with self._phases(resource).before():
                writes.validate(docs, resource.serves)
        matched = modified = 0
        for raw, doc in planned:
            with _so_far(modified, "documents were modified"):
                outcome = self._save(resource, query, raw, doc, change)
            matched += outcome is not None
            modified += bool(outcome)
        return matched, modified

    @staticmethod
    def _planned(resource: Resource, raw: dict[str, Any], change: Callable[[dict[str, Any]], Any]) -> tuple[Any, Any]:
        """(raw, the changed Document to save, or ``None`` when the change leaves the document as it is)."""
        shown = reads.decode(resource, raw, resource.exposed)
        target = change(shown)
        return raw, (None if target == shown else writes.apply(resource, raw, target, shown))

    def _save(
        self, resource: Resource, query: dict[str, Any], raw: dict[str, Any], doc: Any, change: Callable[..., Any]
    ) -> bool | None:
        """Save one changed document if it is still as read: ``True`` modified, ``False`` unchanged, ``None`` no
        longer matching. A document changed meanwhile is read again and changed again (:data:`RETRIES` times)."""
        for attempt in range(RETRIES):
            _pause(attempt)
            if doc is None:
                return False
            phases = self._phases(resource)
            try:
                writes.save_changes(resource, doc, raw, phases, conditional=True)
                return True
            except PreconditionFailed:
                with phases.before():
                    found = resource.collection().find_one(conjunction(query, {"_id": raw["_id"]}))
                if found is None:
                    return None
                raw, doc = self._planned(resource, found, change)
        raise Conflict("The document kept changing while it was being updated; retry.")

    def _delete(self, call: Call, resource: Resource, *, many: bool) -> dict[str, Any]:
        """``deleteOne``/``deleteMany``: each matching document deleted as a DELETE deletes it (delete rules,
        hooks, signals), only while it still matches; at most the batch size."""
        self._allow(resource, "DELETE", "deletes")
        deleter = self._reach(resource, "delete")["delete"]
        query, raws = self._matching(deleter, call, many)
        deleted = 0
        for raw in raws:
            with _so_far(deleted, "documents were deleted"):
                deleted += self._delete_one(deleter, query, raw)
        return {"deletedCount": deleted}

    def _delete_one(self, resource: Resource, query: dict[str, Any], raw: dict[str, Any]) -> int:
        for attempt in range(RETRIES):
            _pause(attempt)
            phases = self._phases(resource)
            try:
                writes.delete(resource, raw, phases, conditional=True)
            except PreconditionFailed:
                with phases.before():
                    found = resource.collection().find_one(conjunction(query, {"_id": raw["_id"]}))
                if found is None:
                    return 0
                raw = found
                continue
            self.api.cache_policy.invalidate_deleted(resource, raw["_id"])
            return 1
        raise Conflict("The document kept changing while it was being deleted; retry.")

    # ------------------------------------------------------------ OpenAPI

    def openapi_paths(self) -> dict[str, Any]:
        """The OpenAPI 3.1 path items of the actions: their request bodies, responses and errors."""
        resources = self.api.resources.values()
        collections = sorted({r.name for r in resources} | {r.collection_name for r in resources})
        return openapi.paths(self.base_path, ACTIONS, collections, self.api.max_batch)


def _pause(attempt: int) -> None:
    """Before a compare-and-set attempt after the first: a few random milliseconds, so that writers racing
    for one document stop meeting in step."""
    if attempt:
        time.sleep(random.uniform(0, 0.002 * min(attempt, 5)))


@contextlib.contextmanager
def _so_far(done: int, what: str) -> Iterator[None]:
    """An error that stops a many-document write, saying how far it got once ``done`` documents were written
    (the Data API's writes of several documents were no transaction either)."""
    try:
        yield
    except Exception as exc:
        problem = to_problem(exc)
        if problem is None or not done:
            raise
        detail = f"{problem.detail or problem.title} ({done} {what} before this one; the rest were not.)"
        raise Problem(
            detail,
            status=problem.status,
            type=problem.type,
            title=problem.title,
            errors=problem.errors,
            headers=problem.headers,
        ) from exc
