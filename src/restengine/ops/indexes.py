"""Create the indexes Document classes declare, and report what changed.

Run once at deploy (``restengine indexes``), not on the request path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import mongoengine
from mongoengine.connection import DEFAULT_CONNECTION_NAME

ID_INDEX = "_id_"


@dataclasses.dataclass(frozen=True)
class IndexReport:
    """What :func:`create_indexes` did to one collection.

    ``document`` names the Document class (several, comma-separated, when
    subclasses share the collection). ``created`` and ``existing`` hold index
    names in the server's listing order; the implicit ``_id_`` index is never
    listed.
    """

    document: str
    collection: str
    created: tuple[str, ...]
    existing: tuple[str, ...]


def _index_names(doc_cls: type[mongoengine.Document]) -> list[str]:
    # Read through the database, not doc_cls._get_collection(): its first call
    # may itself build the indexes (auto_create_index), hiding what was new.
    collection = doc_cls._get_db()[doc_cls._get_collection_name()]
    return [name for name in collection.index_information() if name != ID_INDEX]


def create_indexes(documents: Iterable[type[mongoengine.Document]]) -> list[IndexReport]:
    """Build every index the Document classes declare; one report per collection.

    Classes sharing a collection (``allow_inheritance``) are handled together
    and reported once, under their names joined by ", ". Existing indexes are
    kept; an index declared with different options than the one on the server
    raises :class:`pymongo.errors.OperationFailure` (drop it first). Index
    builds can be slow on large collections: give the connection a long
    timeout. Raises PyMongo errors when the database cannot be reached.
    """
    groups: dict[tuple[str, str], list[type[mongoengine.Document]]] = {}
    for doc_cls in documents:
        key = (doc_cls._meta.get("db_alias", DEFAULT_CONNECTION_NAME), doc_cls._get_collection_name())
        if doc_cls not in groups.setdefault(key, []):
            groups[key].append(doc_cls)

    reports: list[IndexReport] = []
    for (_, collection), classes in groups.items():
        before = _index_names(classes[0])
        for doc_cls in classes:
            doc_cls.ensure_indexes()
        after = _index_names(classes[0])
        reports.append(
            IndexReport(
                document=", ".join(c.__name__ for c in classes),
                collection=collection,
                created=tuple(name for name in after if name not in before),
                existing=tuple(before),
            )
        )
    return reports


def format_report(reports: Iterable[IndexReport]) -> str:
    """Readable lines, one a collection, e.g. ``books: created isbn_1, author_1 (3 existing)``."""
    lines: list[str] = []
    for report in reports:
        done = f"created {', '.join(report.created)}" if report.created else "nothing to create"
        lines.append(f"{report.collection}: {done} ({len(report.existing)} existing)")
    return "\n".join(lines)
