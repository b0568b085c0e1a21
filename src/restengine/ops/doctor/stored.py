"""A sample of stored documents checked against their classes (read only: one ``find`` per collection).

Each sampled document is read by the API's own decoder (:func:`restengine.api.codec.unreadable_values`):
what the API would render as ``null`` and list in ``_unreadable`` is a wrong type (the decoder's "stored X,
expected Y") or an unreadable value. Missing required fields (without a default) and stored members no field
declares are found against the classes' fields, into embedded documents; a document nested deeper than the
API reads is reported once, whole. Findings count the documents showing each problem at each field path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bson.codec_options import DatetimeConversion
from mongoengine import fields as mf

from restengine.api.codec import unreadable_values
from restengine.api.fields import decoder, stored_class
from restengine.api.fields.base import MAX_READ_DEPTH
from restengine.api.model import embedded_type, pk_name
from restengine.ops.doctor.findings import (
    MISSING_REQUIRED,
    TOO_DEEP,
    UNDECLARED_FIELD,
    UNREADABLE_VALUE,
    WRONG_TYPE,
    Finding,
    Tally,
    in_sample,
)

MAX_EMBEDDED = 20  # embedded documents followed this deep for required and undeclared fields

FIXES = {
    WRONG_TYPE: "convert the stored values to the field's type (or change the field): until then the API reads "
    "them as null and lists them in _unreadable",
    UNREADABLE_VALUE: "replace the stored values: the API reads them as null and lists them in _unreadable",
    MISSING_REQUIRED: "store a value in these documents, or give the field a default: until then a write to "
    "them fails validation",
    UNDECLARED_FIELD: "declare the field (or remove it from the documents): the API never shows it",
    TOO_DEEP: f"flatten these documents: the API reads values nested over {MAX_READ_DEPTH} levels as null",
}


def read_sample(collection: Any, size: int) -> list[dict[str, Any]]:
    """The first ``size`` documents in natural order (dates out of Python's range as ``DatetimeMS``, as the API
    reads them)."""
    if size <= 0:
        return []
    options = collection.codec_options.with_options(datetime_conversion=DatetimeConversion.DATETIME_AUTO)
    return list(collection.with_options(codec_options=options).find({}, limit=size))


def nesting(value: Any) -> int:
    """The levels of objects and arrays below ``value`` (a document with scalar fields only: 0)."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        node, level = pending.pop()
        deepest = max(deepest, level)
        children = node.values() if isinstance(node, Mapping) else node
        pending += [(child, level + 1) for child in children if isinstance(child, (Mapping, list))]
    return deepest


def _classify(reason: str) -> str:
    if reason.startswith("nested deeper"):
        return TOO_DEEP
    return WRONG_TYPE if reason.startswith("stored ") and ", expected " in reason else UNREADABLE_VALUE


class _Checks:
    """The tallies of one collection's sample: (resource, kind, path) -> the documents showing it."""

    def __init__(self) -> None:
        self.tallies: dict[tuple[str, str, str], Tally] = {}
        self.pk: Any = None  # the id of the document being checked

    def add(self, resource: str, kind: str, path: str, reason: str) -> None:
        self.tallies.setdefault((resource, kind, path), Tally()).add(self.pk, reason)

    def fields(self, resource: str, cls: type[Any], raw: Mapping[str, Any], prefix: str = "", depth: int = 0) -> None:
        """Missing required fields and undeclared members of ``raw``, a stored ``cls``, and of its embedded ones."""
        pk = None if prefix else pk_name(cls)
        if not getattr(cls, "_dynamic", False):
            declared = {field.db_field for field in cls._fields.values()} | {"_id", "_cls"}
            for key in raw:
                if key not in declared:
                    self.add(resource, UNDECLARED_FIELD, prefix + str(key), f"not declared by {cls.__name__}")
        for name, field in cls._fields.items():
            if name in ("_cls", pk):
                continue
            value = raw.get(field.db_field)
            if value is None and field.required and field.default is None:
                self.add(resource, MISSING_REQUIRED, prefix + name, f"required by {cls.__name__}, missing or null")
            inner = embedded_type(field)
            if inner is None or value is None or depth >= MAX_EMBEDDED:
                continue
            listed = isinstance(field, mf.ListField)
            below = f"{prefix}{name}.{'*.' if listed else ''}"
            for item in value if listed and isinstance(value, list) else [value]:
                if isinstance(item, Mapping):
                    self.fields(resource, _embedded_class(inner, item), item, below, depth + 1)

    def document(self, resource: str, declared: type[Any], cls: type[Any], raw: Mapping[str, Any]) -> None:
        """Every check of one stored document; ``declared`` is the collection's class, ``cls`` the document's."""
        self.pk = raw.get("_id")
        too_deep = nesting(raw) > MAX_READ_DEPTH
        if too_deep:
            self.add(resource, TOO_DEEP, "", f"nested {nesting(raw)} levels deep, over {MAX_READ_DEPTH}")
        pk_field = cls._fields[pk_name(cls)]
        try:
            decoder(pk_field)(raw.get("_id"))
        except Exception as exc:
            self.add(resource, WRONG_TYPE, "id", str(exc) or type(exc).__name__)
        with_cls = bool(declared._meta.get("allow_inheritance"))
        for _, where, reason in unreadable_values(declared, raw, with_cls):
            kind = _classify(reason)
            if not (kind == TOO_DEEP and too_deep):
                self.add(resource, kind, where, reason)
        self.fields(resource, cls, raw)


def _embedded_class(declared: type[Any], raw: Mapping[str, Any]) -> type[Any]:
    try:
        return stored_class(declared, raw["_cls"]) if "_cls" in raw else declared
    except ValueError:  # an unknown _cls: reported by the decoder
        return declared


def stored_findings(
    declared: type[Any],
    sample: Sequence[Mapping[str, Any]],
    resource_for: Callable[[type[Any]], str],
    collection: str,
) -> list[Finding]:
    """The problems of ``sample``, stored documents of ``declared``'s collection, each under the resource
    ``resource_for`` gives for the document's own class (its ``_cls``)."""
    checks = _Checks()
    with_cls = bool(declared._meta.get("allow_inheritance"))
    for raw in sample:
        cls = _embedded_class(declared, raw) if with_cls else declared
        checks.document(resource_for(cls), declared, cls, raw)
    findings: list[Finding] = []
    for (resource, kind, path), tally in checks.tallies.items():
        where = f"{path}: " if path else ""
        detail = f"{where}{tally.reason} ({in_sample(tally, len(sample))})"
        findings.append(Finding(resource, collection, kind, detail, FIXES[kind], field=path or None))
    return findings
