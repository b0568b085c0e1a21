"""Filters and sorts clients may ask for that no index supports, found with ``explain`` (read only).

For each field a resource lets clients filter on with an operator an index can serve, the query
``find({path: <a stored value>})`` (``$exists`` when the sample holds none) is explained; a ``COLLSCAN`` in
the winning plan is a finding, fixed by ``{path: 1}``. For each sort a client may ask for (every sortable
field, ascending and descending, each with the ``_id`` tiebreak ``pagination.parse_sort`` adds) and the
default sort, ``find().sort(...)`` is explained; a blocking ``SORT`` stage is a finding, fixed by the index
with exactly those keys. A list filtered by equality on an indexed field comes in the default order, which a
single-field index cannot give: when the stored value explained matches more documents than the largest page,
``find({path: value}).sort(_id)`` is explained too, and a blocking ``SORT`` is a finding fixed by
``{path: 1, _id: 1}`` (every match is read and sorted for each page otherwise). All these queries carry the
resource's own filter (``_cls`` for a subclass).

The plan is read as mongod writes it (``queryPlanner.winningPlan``, nested ``inputStage``/``inputStages``,
``queryPlan`` under the slot-based engine, ``shards``); SecantusDB answers in the same shape. Where mongod's
planner would use an index the database has, a query is never reported, whatever the plan says: SecantusDB
scans and sorts for an ``_id`` sort, a ``$exists`` or a ``_cls``-prefixed index. An empty plan (mongod's
``EOF``, for a collection that does not exist) is judged by the indexes alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pymongo.errors import PyMongoError

from restengine.api.filters import filter_parameter
from restengine.api.model import FieldPath, UnknownField, conjunction, pk_name, resolve
from restengine.api.openapi.parameters import field_paths
from restengine.api.pagination import DEFAULT_SORT, parse_sort
from restengine.api.resource import Resource
from restengine.errors import InvalidParameter
from restengine.ops.doctor.findings import (
    CHECK_FAILED,
    UNINDEXED_FILTER,
    UNINDEXED_FILTERED_SORT,
    UNINDEXED_SORT,
    Finding,
    Key,
    key_text,
    meta_spec,
)
from restengine.ops.doctor.indexes import ID_KEY, Index

# The filter operators an index on the field serves (a prefix for ``startswith``); the others scan anyway.
INDEXABLE = ("eq", "in", "gt", "gte", "lt", "lte", "all", "startswith")
_CHILDREN = ("inputStage", "inputStages", "queryPlan", "shards", "winningPlan", "thenStage", "elseStage",
             "outerStage", "innerStage")  # fmt: skip


def plan_stages(explained: Mapping[str, Any]) -> list[str] | None:
    """The stage names of an ``explain`` answer's winning plan, outermost first; ``None`` when it has none
    (an unknown shape) or only ``EOF`` (mongod, for a collection that does not exist)."""
    planner = explained.get("queryPlanner")
    winning = planner.get("winningPlan") if isinstance(planner, Mapping) else None
    stages: list[str] = []
    pending: list[Any] = [winning]
    while pending:
        node = pending.pop(0)
        if isinstance(node, list):
            pending[:0] = node
        elif isinstance(node, Mapping):
            if isinstance(node.get("stage"), str):
                stages.append(node["stage"])
            pending += [node[key] for key in _CHILDREN if key in node]
    return stages if [s for s in stages if s != "EOF"] else None


def explain(collection: Any, query: Mapping[str, Any], sort: Sequence[tuple[str, int]] | None) -> list[str] | None:
    """The winning plan's stages for ``find(query).sort(sort)``, planned only (``queryPlanner``: nothing runs)."""
    command: dict[str, Any] = {"find": collection.name, "filter": dict(query)}
    if sort:
        command["sort"] = dict(sort)
    return plan_stages(collection.database.command("explain", command, verbosity="queryPlanner"))


def _cls_filtered(resource: Resource) -> bool:
    return "_cls" in resource.base_filter()


def serves_filter(indexes: Iterable[Index], path: str, after_cls: bool) -> bool:
    """Whether mongod can answer a condition on ``path`` from one of ``indexes``: its first key, or its second
    after ``_cls`` when the query names the class."""
    for index in indexes:
        keys = [p for p, kind in index.key if kind != "text"] if index.usable else []
        if keys[:1] == [path] or (after_cls and keys[:2] == ["_cls", path]):
            return True
    return False


def serves_sort(indexes: Iterable[Index], sort: Sequence[tuple[str, int]], after_cls: bool) -> bool:
    """Whether one of ``indexes`` gives ``sort``'s order without a blocking sort: its keys begin with the sort
    keys, all in the same directions or all reversed (after ``_cls`` when the query names the class)."""
    wanted = list(sort)
    flipped = [(path, -direction) for path, direction in sort]
    for index in indexes:
        if not index.usable:
            continue
        keys = list(index.key)
        starts = [keys] + ([keys[1:]] if after_cls and keys[:1] == [("_cls", 1)] else [])
        if any(head[: len(wanted)] in (wanted, flipped) for head in starts):
            return True
    return False


def serves_filtered_sort(indexes: Iterable[Index], path: str, after_cls: bool) -> bool:
    """Whether one of ``indexes`` gives the default order of the documents equal on ``path``: its keys begin with
    ``path`` then ``_id`` (after ``_cls`` when the query names the class)."""
    for index in indexes:
        keys = [p for p, _ in index.key] if index.usable else []
        if keys[:2] == [path, "_id"] or (after_cls and keys[:3] == ["_cls", path, "_id"]):
            return True
    return False


def representative(sample: Sequence[Mapping[str, Any]], db_path: str) -> Any:
    """The first stored scalar at ``db_path`` (through lists) in ``sample``; ``None`` when there is none."""
    for raw in sample:
        values: list[Any] = [raw]
        for part in db_path.split("."):
            step: list[Any] = []
            for value in values:
                inner = value.get(part) if isinstance(value, Mapping) else None
                step += inner if isinstance(inner, list) else [inner]
            values = step
        for value in values:
            if value is not None and not isinstance(value, (Mapping, list)):
                return value
    return None


def _filter_paths(resource: Resource) -> list[tuple[FieldPath, str]]:
    """The field paths clients may filter on with an operator an index serves, each with the first such operator."""
    found: list[tuple[FieldPath, str]] = []
    for path, _ in field_paths(resource.doc_cls):
        for op in INDEXABLE:
            name = path if op == "eq" else f"{path}__{op}"
            try:
                fp, parsed = filter_parameter(
                    resource.doc_cls, name, filterable=resource.filterable, hidden=resource.unexposed
                )
            except InvalidParameter:
                continue
            if parsed == op and fp.name == path:
                found.append((fp, op))
                break
    return found


def _sorts(resource: Resource) -> list[tuple[str, list[tuple[str, int]], list[tuple[str, int]]]]:
    """(what a client sends, the sort keys, the same with attribute paths) for the default sort and every
    sort on one field, each once."""
    pk = pk_name(resource.doc_cls)
    sorts = [("the default sort", list(DEFAULT_SORT), [(pk, 1)])]
    seen = {tuple(DEFAULT_SORT)}
    for path, _ in field_paths(resource.doc_cls):
        for text in (path, f"-{path}"):
            try:
                keys = parse_sort(resource.doc_cls, text, sortable=resource.options.sortable, hidden=resource.unexposed)
            except InvalidParameter:
                continue
            if tuple(keys) in seen:
                continue
            seen.add(tuple(keys))
            sorts.append((f"?sort={text}", keys, [(_attr_path(resource, key), d) for key, d in keys]))
    return sorts


def _attr_path(resource: Resource, db_path: str) -> str:
    """The dotted attribute path MongoEngine's ``meta["indexes"]`` takes for a stored path of a sort key."""
    if db_path == "_id":
        return pk_name(resource.doc_cls)
    for path, _ in field_paths(resource.doc_cls):
        try:
            fp = resolve(resource.doc_cls, path)
        except UnknownField:
            continue
        if fp.db_path == db_path:
            return ".".join(fp.attr_path)
    return db_path


def query_findings(
    resource: Resource, collection: Any, indexes: Sequence[Index], sample: Sequence[Mapping[str, Any]]
) -> list[Finding]:
    """The filters and sorts of ``resource`` no index supports (see the module)."""
    indexes = [*indexes, Index(ID_KEY, unique=True, name="_id_")]  # every collection has it once created
    base = resource.base_filter()
    after_cls = _cls_filtered(resource)
    cls_name = resource.doc_cls.__name__
    findings: list[Finding] = []

    def check(label: str, query: Mapping[str, Any], sort: Sequence[tuple[str, int]] | None) -> list[str] | None:
        try:
            return explain(collection, query, sort)
        except PyMongoError as exc:
            detail = f"explain of {label} failed: {exc}"[:300]
            findings.append(Finding(resource.name, collection.name, CHECK_FAILED, detail))
            return []

    for fp, op in _filter_paths(resource):
        value = representative(sample, fp.db_path)
        query = conjunction(base, {fp.db_path: {"$exists": True} if value is None else value})
        stages = check(f"a filter on {fp.name}", query, None)
        if stages == []:
            continue
        if serves_filter(indexes, fp.db_path, after_cls):
            if value is not None and op == "eq":
                findings += _filtered_sort(resource, collection, indexes, fp, query, check)
            continue
        if stages is None or "COLLSCAN" in stages:
            key: Key = ((fp.db_path, 1),)
            findings.append(
                Finding(
                    resource.name,
                    collection.name,
                    UNINDEXED_FILTER,
                    f"filtering on {fp.name} scans the whole collection ({_plan(stages)})",
                    f"create index {key_text(key)}: declare {meta_spec([('.'.join(fp.attr_path), 1)])} in "
                    f"meta['indexes'] of {cls_name} and run restengine indexes",
                    field=fp.name,
                    index=key,
                )
            )
    for label, keys, steps in _sorts(resource):
        stages = check(label, base, keys)
        if stages == [] or serves_sort(indexes, keys, after_cls):
            continue
        if stages is None or "SORT" in stages:
            key = tuple(keys)
            findings.append(
                Finding(
                    resource.name,
                    collection.name,
                    UNINDEXED_SORT,
                    f"{label} sorts in memory ({_plan(stages)})",
                    f"create index {key_text(key)}: declare {meta_spec(steps)} in meta['indexes'] of {cls_name} "
                    "and run restengine indexes",
                    field=label.removeprefix("?sort=") if label.startswith("?") else None,
                    index=key,
                )
            )
    return findings


def _filtered_sort(
    resource: Resource,
    collection: Any,
    indexes: Sequence[Index],
    fp: FieldPath,
    query: Mapping[str, Any],
    check: Callable[[str, Mapping[str, Any], Sequence[tuple[str, int]] | None], list[str] | None],
) -> list[Finding]:
    """The finding for a list filtered on ``fp`` (served by an index) in the default order, when the matches of
    ``query`` are more than a page and no index gives them in that order (see the module)."""
    after_cls = _cls_filtered(resource)
    if serves_filtered_sort(indexes, fp.db_path, after_cls):
        return []
    page = resource.options.max_limit
    try:
        matches = collection.count_documents(query, limit=page + 1)
    except PyMongoError:
        return []  # the explain below reports what the database refuses
    if matches <= page:
        return []
    stages = check(f"a filter on {fp.name} in the default order", query, DEFAULT_SORT)
    if stages == [] or (stages is not None and "SORT" not in stages):
        return []
    key: Key = ((fp.db_path, 1), *DEFAULT_SORT)
    steps = [(".".join(fp.attr_path), 1), (pk_name(resource.doc_cls), 1)]
    return [
        Finding(
            resource.name,
            collection.name,
            UNINDEXED_FILTERED_SORT,
            f"?{fp.name}=<value> in the default order reads every match and sorts it in memory for each page "
            f"(more than {page} documents match a stored value; {_plan(stages)})",
            f"create index {key_text(key)}: declare {meta_spec(steps)} in meta['indexes'] of "
            f"{resource.doc_cls.__name__} and run restengine indexes",
            field=fp.name,
            index=key,
        )
    ]


def _plan(stages: list[str] | None) -> str:
    return "plan: " + " > ".join(stages) if stages else "no query plan yet, and no index for it"
