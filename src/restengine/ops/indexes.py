"""Create the indexes Document classes declare, and report what changed.

Run before any worker serves (gunicorn's master, ``restengine up``: :func:`startup_indexes`, as
``RESTENGINE_INDEXES`` says) or at deploy (``restengine indexes``), never on the request path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import mongoengine
from mongoengine.connection import DEFAULT_CONNECTION_NAME
from pymongo.errors import OperationFailure

from restengine.config import ConfigError

if TYPE_CHECKING:
    from restengine.config import Settings

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


# ---------------------------------------------------------------- at start-up

Keys = list[tuple[str, Any]]


@dataclasses.dataclass(frozen=True)
class Missing:
    """A declared index the database lacks: its keys (stored names) on ``collection``, declared by ``document``."""

    document: str
    collection: str
    keys: tuple[tuple[str, Any], ...]

    def __str__(self) -> str:
        return f"{self.collection}: {_format_keys(self.keys)} (declared by {self.document})"


def _format_keys(keys: Iterable[tuple[str, Any]]) -> str:
    return "{" + ", ".join(f"{name}: {direction}" for name, direction in keys) + "}"


def _groups(documents: Iterable[type[mongoengine.Document]]) -> dict[tuple[str, str], list[type[mongoengine.Document]]]:
    groups: dict[tuple[str, str], list[type[mongoengine.Document]]] = {}
    for doc_cls in documents:
        key = (doc_cls._meta.get("db_alias", DEFAULT_CONNECTION_NAME), doc_cls._get_collection_name())
        if doc_cls not in groups.setdefault(key, []):
            groups[key].append(doc_cls)
    return groups


def missing_indexes(documents: Iterable[type[mongoengine.Document]]) -> list[Missing]:
    """The declared indexes the database lacks, compared by keys (read only: nothing is built)."""
    found: list[Missing] = []
    for (_, collection), classes in _groups(documents).items():
        existing = [list(info["key"]) for info in classes[0]._get_db()[collection].index_information().values()]
        declared: list[Keys] = []
        for doc_cls in classes:
            declared += [list(keys) for keys in doc_cls.list_indexes() if list(keys) not in declared]
        for keys in declared:
            if keys not in existing and keys != [("_id", 1)]:
                owner = next((c for c in classes if list(keys) in [list(k) for k in c.list_indexes()]), classes[0])
                found.append(Missing(owner.__name__, collection, tuple(keys)))
    return found


def prepare_indexes(documents: list[type[mongoengine.Document]], mode: str) -> list[str]:
    """What ``RESTENGINE_INDEXES`` asks at start-up, done; the lines to log.

    ``create``: build the missing declared indexes. ``check``: refuse to start while one is missing.
    ``off``: neither. Raises :class:`ConfigError` naming the index (and, for a unique index that existing
    documents violate, the collection, the index and an example of the duplicated values).
    """
    if mode == "off":
        return [
            "RESTENGINE_INDEXES=off: declared indexes are neither checked nor created "
            "(a unique field is unique only where its index exists)"
        ]
    missing = missing_indexes(documents)
    if not missing:
        return []
    if mode == "check":
        raise ConfigError(
            f"RESTENGINE_INDEXES=check: {len(missing)} declared index(es) missing: "
            + "; ".join(map(str, missing))
            + " — create them (`restengine indexes`) or set RESTENGINE_INDEXES=create"
        )
    lines: list[str] = []
    for (_, collection), classes in _groups(documents).items():
        wanted = [m for m in missing if m.collection == collection]
        if not wanted:
            continue
        for doc_cls in classes:
            doc_cls._collection = None  # a collection MongoEngine cached may belong to a client closed since
            try:
                doc_cls.ensure_indexes()
            except OperationFailure as exc:
                if exc.code not in (11000, 11001):
                    raise
                raise ConfigError(_blocked(doc_cls, collection)) from None
        lines += [f"created index {m}" for m in wanted]
    return lines


def _blocked(doc_cls: type[mongoengine.Document], collection: str) -> str:
    """Why a unique index cannot be built: the first set of duplicated values found, and their documents."""
    db = doc_cls._get_db()
    for spec in doc_cls._meta.get("index_specs", []):
        if not spec.get("unique"):
            continue
        fields = [name for name, _ in spec["fields"]]
        group = {f"k{i}": f"${name}" for i, name in enumerate(fields)}
        pipeline: list[dict[str, Any]] = [
            {"$group": {"_id": group, "n": {"$sum": 1}, "ids": {"$push": "$_id"}}},
            {"$match": {"n": {"$gt": 1}}},
            {"$limit": 1},
        ]
        for duplicate in db[collection].aggregate(pipeline):
            values = ", ".join(f"{name}={duplicate['_id'].get(f'k{i}')!r}" for i, name in enumerate(fields))
            ids = ", ".join(map(str, duplicate["ids"][:3]))
            return (
                f"RESTENGINE_INDEXES: the unique index {_format_keys(spec['fields'])} on {collection} cannot be "
                f"built: {duplicate['n']} documents share {values} (e.g. _id {ids}); remove the duplicates, "
                "or set RESTENGINE_INDEXES=off to start without the index"
            )
    return f"RESTENGINE_INDEXES: a unique index on {collection} cannot be built: existing documents violate it"


def startup_indexes(settings: Settings) -> list[str]:
    """Apply ``RESTENGINE_INDEXES`` to the served classes once, before any worker starts; the lines to log.

    Connects with its own short-lived client (closed before returning). Raises :class:`ConfigError`
    (refuse to start) as :func:`prepare_indexes` does, and PyMongo's errors when the database cannot
    be reached.
    """
    from restengine import db
    from restengine.app import documents_served_by

    classes = documents_served_by(settings)  # what cannot be served stops start-up here, whatever the mode
    if settings.indexes == "off":
        return prepare_indexes([], "off")
    db.use(settings, timeout_ms=120_000)
    try:
        return prepare_indexes(classes, settings.indexes)
    finally:
        db.close_all()


def main() -> int:
    """``python -m restengine.ops.indexes``: :func:`startup_indexes` for the environment's settings, in a process
    of its own (gunicorn's master starts it, so it never holds a database client when it forks, nor runs
    PyMongo's threads under gevent). Prints what it did; exit 2 with the reason on stderr when the
    service must not start."""
    import sys

    from pymongo.errors import PyMongoError

    from restengine.config import load_settings

    try:
        settings = load_settings()
        for line in startup_indexes(settings):
            print(line, flush=True)
    except ConfigError as exc:
        print(f"invalid configuration: {exc}", file=sys.stderr, flush=True)
        return 2
    except PyMongoError as exc:
        print(
            f"cannot check the declared indexes (RESTENGINE_INDEXES={settings.indexes}): {type(exc).__name__}: "
            f"{exc}; start once the database answers, or set RESTENGINE_INDEXES=off",
            file=sys.stderr,
            flush=True,
        )
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
