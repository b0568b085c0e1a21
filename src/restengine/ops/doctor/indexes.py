"""The indexes the served classes declare against those in the database (read only: ``listIndexes``, ``aggregate``).

Declared indexes are what ``Document.ensure_indexes`` would build for each class sharing the collection
(``_meta["index_specs"]``, and the ``_cls`` index of a class with ``allow_inheritance``); they are compared
with the database's by key pattern and uniqueness. The ``_id`` index is never reported.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from restengine.ops.doctor.findings import (
    INDEX_DIFFERS,
    MISSING_INDEX,
    UNDECLARED_INDEX,
    Finding,
    Key,
    key_text,
)

ID_KEY: Key = (("_id", 1),)


@dataclasses.dataclass(frozen=True)
class Index:
    """One index, declared or in the database. ``usable`` is false for an index a plain query may not use
    (partial, hidden, or with a collation)."""

    key: Key
    unique: bool = False
    sparse: bool = False
    name: str | None = None
    usable: bool = True
    declared_by: str | None = None


def _direction(value: Any) -> Any:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def _key(pairs: Iterable[tuple[str, Any]]) -> Key:
    return tuple((str(path), _direction(direction)) for path, direction in pairs)


def existing_indexes(collection: Any) -> list[Index]:
    """The indexes of a PyMongo collection (none when it does not exist); a text index by its fields."""
    found: list[Index] = []
    for info in collection.list_indexes():
        pairs = list(info["key"].items())
        if any(path == "_fts" for path, _ in pairs):  # a text index: its fields are the weights' keys
            pairs = [(path, "text") for path in (info.get("weights") or {})]
        found.append(
            Index(
                key=_key(pairs),
                unique=bool(info.get("unique", False)),
                sparse=bool(info.get("sparse", False)),
                name=info.get("name"),
                usable=not (info.get("partialFilterExpression") or info.get("hidden") or info.get("collation")),
            )
        )
    return found


def declared_indexes(classes: Sequence[type[Any]]) -> list[Index]:
    """What ``ensure_indexes`` builds for each class (classes sharing one collection), without duplicates."""
    found: dict[tuple[Key, bool], Index] = {}
    for doc_cls in classes:
        specs = doc_cls._meta.get("index_specs") or []
        cls_indexed = False
        for spec in specs:
            key = _key(spec["fields"])
            cls_indexed = cls_indexed or any(path == "_cls" for path, _ in key)
            unique = bool(spec.get("unique", False))
            found.setdefault(
                (key, unique), Index(key, unique, bool(spec.get("sparse", False)), declared_by=doc_cls.__name__)
            )
        if doc_cls._meta.get("index_cls", True) and doc_cls._meta.get("allow_inheritance") and not cls_indexed:
            found.setdefault(((("_cls", 1),), False), Index((("_cls", 1),), declared_by=doc_cls.__name__))
    return [index for index in found.values() if index.key != ID_KEY]


def _described(index: Index) -> str:
    options = [option for option, on in (("unique", index.unique), ("sparse", index.sparse)) if on]
    return key_text(index.key) + (f" ({', '.join(options)})" if options else "")


def index_findings(
    resource: str, collection: Any, classes: Sequence[type[Any]], existing: list[Index]
) -> list[Finding]:
    """Declared indexes missing from ``collection`` (a unique one checked for duplicates that would stop its
    build), indexes nobody declares, and those whose uniqueness differs."""
    name = collection.name
    declared = declared_indexes(classes)
    findings: list[Finding] = []
    for index in declared:
        same = [other for other in existing if other.key == index.key]
        if not same:
            detail = f"{_described(index)}, declared by {index.declared_by}, is not in the database"
            blocked = _duplicate(collection, index) if index.unique else None
            if blocked:
                detail += f"; it cannot be built yet: {blocked}"
            fix = "remove the duplicates, then run restengine indexes" if blocked else "run restengine indexes"
            findings.append(Finding(resource, name, MISSING_INDEX, detail, fix, index=index.key))
        elif not any(other.unique == index.unique for other in same):
            there = same[0]
            detail = (
                f"{key_text(index.key)} is declared {'unique' if index.unique else 'not unique'} by "
                f"{index.declared_by}, but the database's index {there.name} is "
                f"{'unique' if there.unique else 'not unique'}"
            )
            fix = f"drop {there.name} and run restengine indexes, or change the declaration"
            findings.append(Finding(resource, name, INDEX_DIFFERS, detail, fix, index=index.key))
    for there in existing:
        if there.key == ID_KEY or any(index.key == there.key for index in declared):
            continue
        detail = f"{there.name} {_described(there)} is in the database, but no served class declares it"
        if there.unique:
            detail += ": writes it refuses answer 409 for a rule the classes do not state"
        fix = f"declare it in meta['indexes'] of {classes[0].__name__}, or drop it if nothing uses it"
        findings.append(Finding(resource, name, UNDECLARED_INDEX, detail, fix, index=there.key))
    return findings


def _duplicate(collection: Any, index: Index) -> str | None:
    """One group of stored documents sharing the values of a unique index's fields, described; ``None``: none."""
    paths = [path for path, _ in index.key]
    group: dict[str, Any] = {f"k{i}": f"${path}" for i, path in enumerate(paths)}
    pipeline: list[dict[str, Any]] = []
    if index.sparse:
        pipeline.append({"$match": {"$or": [{path: {"$exists": True}} for path in paths]}})
    pipeline += [
        {"$group": {"_id": group, "n": {"$sum": 1}}},
        {"$match": {"n": {"$gt": 1}}},
        {"$limit": 1},
    ]
    for found in collection.aggregate(pipeline):
        values = {path: found["_id"].get(f"k{i}") for i, path in enumerate(paths)}
        shown = ", ".join(f"{path}={value!r}" for path, value in values.items())
        return f"{found['n']} documents share {shown}"[:300]
    return None
