"""What ``restengine doctor`` reports: one :class:`Finding` per problem, of one of the kinds below."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from typing import Any

MISSING_INDEX = "missing_index"
"""An index a served class declares is not in the database."""
UNDECLARED_INDEX = "undeclared_index"
"""An index in the database that no served class sharing the collection declares."""
INDEX_DIFFERS = "index_differs"
"""An index with the declared key pattern exists, but unique where the declaration is not, or the reverse."""
UNINDEXED_FILTER = "unindexed_filter"
"""A field clients may filter on, whose query scans the whole collection (``COLLSCAN``)."""
UNINDEXED_SORT = "unindexed_sort"
"""A sort clients may ask for (or the default sort), which the database does in memory (a ``SORT`` stage)."""
UNINDEXED_FILTERED_SORT = "unindexed_filtered_sort"
"""A filter an index serves, whose matches (more than a page holds) the default order then sorts in memory."""
WRONG_TYPE = "wrong_type"
"""Stored values of another type than their field's: the API reads them as ``null`` (``_unreadable``)."""
UNREADABLE_VALUE = "unreadable_value"
"""Stored values of the right kind the API still cannot render (NaN, a regex, a date out of range...)."""
MISSING_REQUIRED = "missing_required"
"""A required field without a default, missing (or null) in stored documents."""
UNDECLARED_FIELD = "undeclared_field"
"""A stored member no field declares: the API never shows it."""
TOO_DEEP = "too_deep"
"""Stored documents nested deeper than the API reads (100 levels of objects and arrays)."""
CHECK_FAILED = "check_failed"
"""A check the database refused to answer (an ``explain``, an index listing)."""

KINDS = (
    MISSING_INDEX,
    UNDECLARED_INDEX,
    INDEX_DIFFERS,
    UNINDEXED_FILTER,
    UNINDEXED_SORT,
    UNINDEXED_FILTERED_SORT,
    WRONG_TYPE,
    UNREADABLE_VALUE,
    MISSING_REQUIRED,
    UNDECLARED_FIELD,
    TOO_DEEP,
    CHECK_FAILED,
)

Key = tuple[tuple[str, Any], ...]
"""An index key pattern: (stored dotted path, direction or index type) in order."""


@dataclasses.dataclass(frozen=True)
class Finding:
    """One thing that needs attention before RestEngine serves a collection.

    ``resource`` is the URL name of the resource it concerns; ``detail`` says what was found, ``fix`` (when
    there is one) what to do. ``field`` (a field path) and ``index`` (a key pattern) are there for machines.
    """

    resource: str
    collection: str
    kind: str
    detail: str
    fix: str | None = None
    field: str | None = None
    index: Key | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "resource": self.resource,
            "collection": self.collection,
            "kind": self.kind,
            "detail": self.detail,
        }
        if self.fix is not None:
            out["fix"] = self.fix
        if self.field is not None:
            out["field"] = self.field
        if self.index is not None:
            out["index"] = dict(self.index)
        return out


def key_text(key: Key) -> str:
    """A key pattern as the shell writes it: ``{"published": -1, "_id": 1}``."""
    return json.dumps(dict(key))


def meta_spec(steps: Sequence[tuple[str, int]]) -> str:
    """A MongoEngine ``meta["indexes"]`` entry for (dotted attribute path, direction) pairs: ``"-published"`` or
    ``("-published", "id")``."""
    names = [("-" if direction == -1 else "") + path for path, direction in steps]
    return json.dumps(names[0]) if len(names) == 1 else "(" + ", ".join(json.dumps(n) for n in names) + ")"


@dataclasses.dataclass
class Tally:
    """Stored documents showing one problem: how many, the first one's id, the first reason."""

    count: int = 0
    example: Any = None
    reason: str = ""

    def add(self, pk: Any, reason: str) -> None:
        if not self.count:
            self.example, self.reason = pk, reason
        self.count += 1


def in_sample(tally: Tally, sampled: int) -> str:
    return f"{tally.count} of {sampled} sampled documents, e.g. _id {tally.example}"


def sorted_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Grouped by resource (in the order met), then by kind in :data:`KINDS` order, the order found within."""
    found = list(findings)
    order = {name: i for i, name in enumerate(dict.fromkeys(f.resource for f in found))}
    return sorted(found, key=lambda f: (order[f.resource], KINDS.index(f.kind)))
