"""``restengine doctor``: a read-only audit of the served Document classes against the live database.

For each collection the served classes use: the declared indexes against the database's
(:mod:`.indexes`), the filters and sorts clients may ask for that no index supports (:mod:`.queries`, with
``explain``), and a sample of the stored documents against the classes (:mod:`.stored`). Nothing is written:
the checks only list indexes, explain queries (planned, never run), read the sample and, for a missing unique
index, look for the duplicates that would stop its build. The classes are not changed either: their
collections are looked up without MongoEngine's ``_get_collection``, which would build indexes (or create a
capped collection) on first use.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator, Sequence
from typing import Any

from mongoengine.connection import DEFAULT_CONNECTION_NAME, ConnectionFailure

from restengine.config import ConfigError
from restengine.ops.doctor.findings import KINDS, Finding, sorted_findings
from restengine.ops.doctor.indexes import existing_indexes, index_findings
from restengine.ops.doctor.queries import query_findings
from restengine.ops.doctor.stored import read_sample, stored_findings

__all__ = ["KINDS", "Finding", "Report", "diagnose", "format_json", "format_text"]

DEFAULT_SAMPLE = 1000


@dataclasses.dataclass(frozen=True)
class Report:
    """What :func:`diagnose` found: the findings, and what was looked at."""

    findings: list[Finding]
    resources: list[str]
    collections: list[str]
    sampled: int

    @property
    def healthy(self) -> bool:
        return not self.findings


@contextlib.contextmanager
def _plain_collections(classes: Sequence[type[Any]]) -> Iterator[None]:
    """Give each class its PyMongo collection for the block, so MongoEngine never builds its own (which would
    create indexes, or a capped or time-series collection); the classes are as they were afterwards."""
    missing = object()
    saved = {cls: cls.__dict__.get("_collection", missing) for cls in classes}
    try:
        for cls in classes:
            try:
                cls._collection = cls._get_db()[cls._get_collection_name()]
            except ConnectionFailure as exc:  # a db_alias nobody connected
                raise ConfigError(f"{cls.__name__}: {exc}") from None
        yield
    finally:
        for cls, previous in saved.items():
            if previous is missing:
                if "_collection" in vars(cls):
                    del cls._collection
            else:
                cls._collection = previous


def _groups(classes: Sequence[type[Any]]) -> dict[tuple[str, str], list[type[Any]]]:
    """The classes by collection (alias, name), a parent before its subclasses."""
    groups: dict[tuple[str, str], list[type[Any]]] = {}
    for cls in classes:
        key = (cls._meta.get("db_alias", DEFAULT_CONNECTION_NAME), cls._get_collection_name())
        groups.setdefault(key, []).append(cls)
    for members in groups.values():
        members.sort(key=lambda cls: cls._class_name.count("."))
    return groups


def diagnose(classes: Sequence[type[Any]], *, sample: int = DEFAULT_SAMPLE) -> Report:
    """Audit ``classes`` (served as ``restengine serve`` serves them) against their connection's database.

    ``sample`` documents per collection are checked (``0``: none). Raises :class:`ConfigError` when the
    classes cannot be served together (two take the same URL name), PyMongo errors when the database cannot
    be read.
    """
    from restengine.api import Api

    api = Api(openapi_path=None, docs_path=None, idempotency_ttl_seconds=None)
    try:
        for cls in classes:
            api.register(cls)
    except ValueError as exc:
        raise ConfigError(f"the served classes: {exc}") from None

    def resource_name(cls: type[Any]) -> str:
        found = api.resource_for(cls)
        return found.name if found is not None else str(cls._get_collection_name())

    findings: list[Finding] = []
    sampled = 0
    groups = _groups(classes)
    with _plain_collections(list(classes)):
        for members in groups.values():
            root = members[0]
            collection = root._collection
            name = resource_name(root)
            existing = existing_indexes(collection)
            findings += index_findings(name, collection, members, existing)
            documents = read_sample(collection, sample)
            sampled += len(documents)
            findings += stored_findings(root, documents, resource_name, collection.name)
            for cls in members:
                resource = api.resource_for(cls)
                if resource is not None and resource.doc_cls is cls:
                    findings += query_findings(resource, collection, existing, documents)
    return Report(
        findings=sorted_findings(findings),
        resources=list(api.resources),
        collections=[name for _, name in groups],
        sampled=sampled,
    )


def format_json(report: Report) -> str:
    """The findings as a JSON list: each ``resource``, ``collection``, ``kind``, ``detail``, and ``fix``,
    ``field``, ``index`` where there is one."""
    return json.dumps([finding.as_json() for finding in report.findings], indent=2, default=str)


def format_text(report: Report) -> str:
    """For people: the findings grouped by resource, one line each, then a summary line."""
    lines: list[str] = []
    current = None
    for finding in report.findings:
        if finding.resource != current:
            current = finding.resource
            lines.append(f"{current} (collection {finding.collection}):")
        fix = f" -> {finding.fix}" if finding.fix else ""
        lines.append(f"  {finding.kind}: {finding.detail}{fix}")
    checked = (
        f"{_many(len(report.resources), 'resource')}, {_many(len(report.collections), 'collection')}, "
        f"{_many(report.sampled, 'stored document')} sampled"
    )
    if report.healthy:
        lines.append(f"nothing needs attention ({checked})")
    else:
        counts = {kind: sum(finding.kind == kind for finding in report.findings) for kind in KINDS}
        kinds = ", ".join(f"{count} {kind}" for kind, count in counts.items() if count)
        affected = _many(len({finding.resource for finding in report.findings}), "resource")
        lines.append(f"{_many(len(report.findings), 'finding')} in {affected}: {kinds} ({checked})")
    return "\n".join(lines)


def _many(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
