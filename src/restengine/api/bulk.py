"""``POST /<resource>/_bulk``: many inserts, updates, replaces and deletes, checked first, then one ``bulk_write``.

Every operation is built and validated through the Document (as the item
writes in :mod:`restengine.api.writes` are) and reaches only what the
caller's rule for its action reaches; nothing is written unless every
operation is valid. ``bulk_write`` sends no MongoEngine signals: the caller
invalidates the cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

import bson
import mongoengine
from bson import json_util
from bson.binary import UuidRepresentation
from pymongo import DeleteOne, InsertOne, UpdateOne
from pymongo.errors import BulkWriteError

from restengine.api.codec import pk_value, stored_document
from restengine.api.model import conjunction, delete_files
from restengine.api.outcome import Phases
from restengine.api.resource import Resource
from restengine.api.writes import apply, assign_ids, build, hook, unique_fields, validate
from restengine.errors import DUPLICATE_KEY, InputError, OutcomeUnknown, TooManyItems, duplicate_message

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Operation:
    index: int
    op: str
    resource: Resource  # as the caller reaches it with this operation's action
    doc: Any = None
    pk: Any = None
    raw: Any = None  # the stored document before the operation (update, replace, delete)


STATUS_OK = {"insert": 201, "update": 200, "replace": 200, "delete": 204}

# Each _bulk operation needs the method that would do the same on its own.
BULK_METHODS = {"insert": "POST", "update": "PATCH", "replace": "PUT", "delete": "DELETE"}


def bulk_operations(body: Any) -> set[str]:
    """The operation names (``op``) a ``_bulk`` body asks for, whatever else is wrong with it."""
    operations = body.get("operations") if isinstance(body, dict) else None
    if not isinstance(operations, list):
        return set()
    return {spec["op"] for spec in operations if isinstance(spec, dict) and isinstance(spec.get("op"), str)}


def plan_bulk(
    resource: Resource,
    body: Any,
    merge: Callable[[Any, Any], Any],
    encode: Callable[[Resource, Any], Any],
    scoped: Callable[[str], Resource] | None = None,
    *,
    max_items: int = 1000,
) -> tuple[list[Operation], bool]:
    """Parse and validate a ``_bulk`` body; every operation is checked before anything is written.

    ``merge`` applies a merge patch; ``encode`` gives a raw document's representation
    through a resource. ``scoped(op)`` is the resource as the caller reaches it
    with that operation (``insert``, ``update``, ``replace``, ``delete``): a
    document outside it is "no such item", and an insert or update that would
    leave one outside is refused. Raises :class:`InputError` with errors keyed
    by operation index; more than ``max_items`` operations is :class:`TooManyItems`.
    """
    reach = scoped or (lambda op: resource)
    if not isinstance(body, dict) or not isinstance(body.get("operations"), list):
        raise InputError({"operations": 'expected {"operations": [...], "ordered": true|false}'})
    ordered = body.get("ordered", True)
    if not isinstance(ordered, bool):
        raise InputError({"ordered": "must be true or false"})
    operations = body["operations"]
    if not operations:
        raise InputError({"operations": "the array is empty"})
    if len(operations) > max_items:
        raise TooManyItems(len(operations), max_items)
    plan: list[Operation] = []
    errors: dict[str, Any] = {}
    pks: dict[int, Any] = {}
    allowed = [op for op, method in BULK_METHODS.items() if method in resource.methods]
    for index, spec in enumerate(operations):
        op = spec.get("op") if isinstance(spec, dict) else None
        if op not in allowed:
            errors[str(index)] = {"op": f"must be one of {', '.join(allowed)} (the methods this resource allows)"}
        elif op != "insert":
            try:
                pks[index] = pk_value(resource.doc_cls, spec.get("id"))
            except (ValueError, TypeError):
                errors[str(index)] = {"id": "not a valid id for this resource"}
    stored = _stored(reach, operations, pks)
    for index, spec in enumerate(operations):
        if str(index) in errors:
            continue
        op = spec["op"]
        target_resource = reach(op)
        try:
            if op == "insert":
                doc = build(target_resource, spec.get("document"))
                plan.append(Operation(index, op, target_resource, doc=doc))
                continue
            raw = stored.get(index)
            if raw is None:
                errors[str(index)] = {"id": "no such item"}
                continue
            if op == "delete":
                doc = stored_document(target_resource.doc_cls, raw, frozenset())  # unreadable values left out
                plan.append(Operation(index, op, target_resource, pk=pks[index], doc=doc, raw=raw))
                continue
            representation = encode(target_resource, raw)
            key = "patch" if op == "update" else "document"
            if not isinstance(spec.get(key), dict):
                raise InputError({key: "must be a JSON object"})
            target = merge(representation, spec[key]) if op == "update" else spec[key]
            doc = apply(target_resource, raw, target, representation)
            plan.append(Operation(index, op, target_resource, doc=doc, pk=pks[index], raw=raw))
        except InputError as exc:
            errors[str(index)] = exc.errors
    for operation in plan:
        if operation.op != "delete" and not operation.resource.reaches(operation.doc.to_mongo()):
            errors[str(operation.index)] = {"": "not a document your access rule reaches"}
    docs = [o.doc for o in plan if o.op != "delete"]
    if docs and not errors:
        try:
            validate(docs, resource.serves)
        except InputError as exc:
            failed = exc.errors if len(docs) > 1 else {"0": exc.errors}
            writes = [o for o in plan if o.op != "delete"]
            errors.update({str(writes[int(i)].index): e for i, e in failed.items()})
    deny = _denied_deletes(resource, [o for o in plan if o.op == "delete"])
    errors.update(deny)
    if errors:
        raise InputError(dict(sorted(errors.items(), key=lambda kv: int(kv[0]))))
    return plan, ordered


def _stored(reach: Callable[[str], Resource], operations: list[Any], pks: Mapping[int, Any]) -> dict[int, Any]:
    """The stored documents the operations with an id name, by operation index: one query per resource."""
    wanted: dict[int, tuple[Resource, list[int]]] = {}
    for index in pks:
        target = reach(operations[index]["op"])
        wanted.setdefault(id(target), (target, []))[1].append(index)
    found: dict[int, Any] = {}
    for target, indexes in wanted.values():
        ids = [pks[index] for index in indexes]
        query = conjunction(target.base_filter(), {"_id": {"$in": ids}})
        raws = {raw["_id"]: dict(raw) for raw in target.collection().find(query)}
        found.update({index: raws[pks[index]] for index in indexes if pks[index] in raws})
    return found


def _denied_deletes(resource: Resource, deletes: list[Operation]) -> dict[str, Any]:
    """Deletes refused by delete rules (``bulk_write`` bypasses MongoEngine's rule handling)."""
    rules = resource.doc_cls._meta.get("delete_rules") or {}
    if not deletes or not rules:
        return {}
    errors: dict[str, Any] = {}
    for (ref_cls, field_name), rule in rules.items():
        if rule != mongoengine.DENY:
            for op in deletes:
                errors[str(op.index)] = {"id": "has delete rules that need DELETE on the item"}
            continue
        referenced = {
            getattr(getattr(d, field_name), "pk", getattr(d, field_name))
            for d in ref_cls.objects(**{f"{field_name}__in": [op.pk for op in deletes]}).only(field_name)
        }
        for op in deletes:
            if op.pk in referenced:
                errors[str(op.index)] = {"id": "other items refer to it"}  # never the referring class or field
    return errors


def prepare_run(resource: Resource, plan: list[Operation]) -> None:
    """The before-hooks of every operation, and the new documents' ids: what comes before :func:`run_bulk`."""
    for op in plan:
        hook(resource, {"insert": "before_create", "delete": "before_delete"}.get(op.op, "before_update"), op.doc)
    assign_ids([op.doc for op in plan if op.op == "insert"])


def run_bulk(resource: Resource, plan: list[Operation], ordered: bool, phases: Phases) -> list[dict[str, Any]]:
    """Execute a validated, prepared plan (:func:`prepare_run`) in one ``bulk_write``; per-operation results.

    An update, replace or delete of an id that an earlier delete of the same
    batch removed (and no later insert brought back) would match nothing: it
    is not sent and its result is a 404. ``bulk_write`` gives only totals, so
    what the server matched is checked against what was sent: a shortfall
    (another client deleted a document meanwhile) is a 404 for the operation
    it must be when one operation of its kind could have missed, and logged
    otherwise.
    """
    requests: list[Any] = []
    positions: list[int] = []  # plan position of each request (unchanged updates send nothing)
    missing: set[int] = set()  # plan positions of operations on an id this batch deleted before them
    present: dict[Any, bool] = {}  # ids this batch deleted (False) or inserted (True) so far
    for position, op in enumerate(plan):
        request: InsertOne[Any] | DeleteOne | UpdateOne
        if op.op == "insert":
            present[op.doc.pk] = True
            request = InsertOne(op.doc.to_mongo())
        elif not present.get(op.pk, True):
            missing.add(position)
            continue
        elif op.op == "delete":  # only while the document is still one the caller reaches
            present[op.pk] = False
            request = DeleteOne(conjunction(op.resource.base_filter(), {"_id": op.pk}))
        else:
            update = op.doc._get_update_doc()
            if not update:
                continue
            request = UpdateOne(conjunction(op.resource.base_filter(), {"_id": op.pk}), update)
        requests.append(request)
        positions.append(position)
    failed: dict[int, dict[str, Any]] = {}
    executed = len(plan)
    counts: Mapping[str, Any] = {}
    try:
        if requests:
            with phases.sending():
                counts = resource.collection().bulk_write(requests, ordered=ordered).bulk_api_result
    except BulkWriteError as exc:
        counts = exc.details
        for error in exc.details.get("writeErrors", []):
            # The server's errmsg names the collection, the index, stored fields and values: never sent.
            if error.get("code") in DUPLICATE_KEY:
                outcome = {"status": 409, "error": duplicate_message(unique_fields(resource, error))}
            else:
                log.info("bulk write error on %s: %s", resource.name, error.get("errmsg"))
                outcome = {"status": 422, "error": "The database refused this operation."}
            failed[positions[error["index"]]] = outcome
        if ordered and failed:
            executed = min(failed)
    missing |= _unmatched(resource, plan, positions, failed, executed, counts)
    results: list[dict[str, Any]] = []
    for position, op in enumerate(plan):
        result: dict[str, Any] = {"index": op.index, "op": op.op, "id": _shown_id(op)}
        if position in failed:
            result.update(failed[position])
        elif position > executed:
            result["status"] = None  # not attempted: an earlier operation of an ordered batch failed
        elif position in missing:
            result.update(status=404, error="No such item (any more).")
        else:
            result["status"] = STATUS_OK[op.op]
            if op.op == "delete":
                delete_files(op.doc)
            hook(resource, {"insert": "after_create", "delete": "after_delete"}.get(op.op, "after_update"), op.doc)
        results.append(result)
    return results


def _unmatched(
    resource: Resource,
    plan: list[Operation],
    positions: list[int],
    failed: Mapping[int, Any],
    executed: int,
    counts: Mapping[str, Any],
) -> set[int]:
    """Plan positions of sent updates and deletes that matched nothing, as far as the totals tell."""
    found: set[int] = set()
    ran = [p for p in positions if p not in failed and p < executed]  # executed without an error
    for ops, total in ((("update", "replace"), "nMatched"), (("delete",), "nRemoved")):
        sent = [p for p in ran if plan[p].op in ops]
        short = len(sent) - int(counts.get(total, 0))
        if short <= 0:
            continue
        if short == len(sent):  # every one of them missed: exact
            found.update(sent)
        else:
            log.warning(
                "bulk on %s: %d of %d %s matched nothing (written meanwhile)", resource.name, short, len(sent), ops
            )
    return found


def _shown_id(op: Operation) -> str:
    return str(op.doc.pk if op.doc else op.pk)


# ---------------------------------------------------------------- what an interrupted batch did

_MISSING = {"$missing": True}


def _at(raw: Mapping[str, Any] | None, path: str) -> Any:
    """The value at a dotted stored ``path`` (list positions as numbers), or a marker when there is none."""
    value: Any = raw
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


_OPTIONS = json_util.JSONOptions(uuid_representation=UuidRepresentation.STANDARD)


def _digest(values: list[Any]) -> str:
    """A digest of stored values, the same whether they come from a Document or from the database."""
    normal = bson.decode(bson.encode({"v": values}, codec_options=_OPTIONS), codec_options=_OPTIONS)
    return hashlib.sha256(json_util.dumps(normal, sort_keys=True, json_options=_OPTIONS).encode()).hexdigest()


def expected_states(plan: list[Operation]) -> list[dict[str, Any]]:
    """For each operation of a prepared plan: its id, and digests of what it changes, before and after.

    Recorded under an ``Idempotency-Key`` before the batch is sent, so that a
    retry after the sending instance died can tell from the data whether the
    batch was applied (:func:`recovered_results`).
    """
    states: list[dict[str, Any]] = []
    for op in plan:
        state: dict[str, Any] = {"index": op.index, "op": op.op, "shown": _shown_id(op)}
        if op.op == "insert":
            state["id"] = op.doc.to_mongo()["_id"]
        elif op.op == "delete":
            state["id"] = op.pk
        else:
            update = op.doc._get_update_doc()
            sets, unsets = update.get("$set", {}), update.get("$unset", {})
            paths = sorted({*sets, *unsets})
            state.update(
                id=op.pk,
                paths=paths,
                before=_digest([_at(op.raw, p) for p in paths]),
                after=_digest([sets.get(p, _MISSING) for p in paths]),
            )
        states.append(state)
    return states


def recovered_results(resource: Resource, states: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """The results of an interrupted batch found applied, ``None`` if none of it was; else :class:`OutcomeUnknown`.

    ``states`` is what :func:`expected_states` recorded (``None``: the batch was never sent).
    """
    if not states:
        return None
    current = {raw["_id"]: raw for raw in resource.collection().find({"_id": {"$in": [s["id"] for s in states]}})}
    applied: list[bool] = []
    undecidable = False
    for state in states:
        raw = current.get(state["id"])
        if state["op"] == "insert":
            applied.append(raw is not None)
        elif state["op"] == "delete":
            applied.append(raw is None)
        elif state["before"] != state["after"]:  # an update that changes nothing tells nothing
            now = None if raw is None else _digest([_at(raw, p) for p in state["paths"]])
            undecidable |= now not in (state["before"], state["after"])  # changed by someone else since
            applied.append(now == state["after"])
    if not undecidable and all(applied):
        return [{"index": s["index"], "op": s["op"], "id": s["shown"], "status": STATUS_OK[s["op"]]} for s in states]
    if not undecidable and not any(applied):
        return None
    raise OutcomeUnknown(
        "An earlier attempt with this Idempotency-Key was interrupted and only part of its operations are found "
        "applied (or the items changed since): read the items to find out what is stored."
    )
