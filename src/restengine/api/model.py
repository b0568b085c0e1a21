"""What the API needs to know about a Document class, read once from MongoEngine's metadata.

Clients always name fields by their Python attribute names; MongoDB stores
them under ``db_field`` names. :func:`resolve` turns a client path such as
``shipping__city`` into the stored dotted path, checking every step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import mongoengine
from mongoengine import fields as mf
from mongoengine.base import BaseField


class UnknownField(LookupError):
    """A client named a field the document does not have (or cannot be traversed)."""


@dataclasses.dataclass(frozen=True)
class FieldPath:
    """A resolved client field path.

    ``attr_path`` is what the client wrote, split (``("shipping", "city")``);
    ``db_path`` is the stored dotted path (``"ship.city"``); ``field`` is the
    MongoEngine field at the end; ``in_list`` tells whether some step goes
    through a list (the stored path then matches any element).
    """

    attr_path: tuple[str, ...]
    db_path: str
    field: BaseField
    in_list: bool

    @property
    def name(self) -> str:
        return "__".join(self.attr_path)


def pk_name(doc_cls: type[Any]) -> str:
    """The attribute name of the primary key (``id`` unless a field has ``primary_key=True``)."""
    return str(doc_cls._meta.get("id_field") or "id")


def pk_field(doc_cls: type[Any]) -> BaseField:
    return doc_cls._fields[pk_name(doc_cls)]


def item_field(field: BaseField) -> BaseField:
    """The element field of a ListField (nested lists unwrapped), else ``field`` itself."""
    while isinstance(field, mf.ListField) and field.field is not None:
        field = field.field
    return field


def embedded_type(field: BaseField) -> type[mongoengine.EmbeddedDocument] | None:
    """The EmbeddedDocument class a field (or list of them) holds, if any."""
    inner = item_field(field)
    if isinstance(inner, mf.EmbeddedDocumentField):
        return inner.document_type  # type: ignore[no-any-return]
    return None


DeleteRule = tuple[type[Any], str, Any]  # (referring class, its field, the rule)


def delete_rules(doc_cls: type[Any]) -> list[DeleteRule]:
    """The delete rules other classes declare on references to ``doc_cls`` (abstract classes aside, as MongoEngine)."""
    rules = (doc_cls._meta.get("delete_rules") or {}).items()
    return [(rule_cls, name, rule) for (rule_cls, name), rule in rules if not rule_cls._meta.get("abstract")]


def delete_files(doc: Any) -> None:
    """Delete the GridFS files of a deleted document's ``FileField``s (``ImageField``s too), as
    ``Document.delete`` does; the document's own delete must already have matched."""
    for name, field in doc._fields.items():
        if isinstance(field, mf.FileField):
            proxy = getattr(doc, name, None)
            if proxy is not None and getattr(proxy, "grid_id", None) is not None:
                proxy.delete()


def public_fields(doc_cls: type[Any]) -> list[str]:
    """Attribute names in declaration order, the primary key first, ``_cls`` never."""
    pk = pk_name(doc_cls)
    names = [name for name in doc_cls._fields_ordered if name != "_cls"]
    return [pk] + [name for name in names if name != pk]


def resolve(doc_cls: type[Any], path: str) -> FieldPath:
    """Resolve a client path (``a`` or ``a__b__c``, attribute names) on ``doc_cls``.

    ``id`` always names the primary key. Steps may go into embedded documents
    and lists of them, not through references. Raises :class:`UnknownField`.
    """
    parts = tuple(path.split("__")) if path else ()
    if not parts or any(not part for part in parts):
        raise UnknownField(path)
    current: type[Any] = doc_cls
    db_parts: list[str] = []
    in_list = False
    field: BaseField | None = None
    for index, part in enumerate(parts):
        if field is not None:
            sub = embedded_type(field)
            if sub is None:
                raise UnknownField(path)
            in_list = in_list or isinstance(field, mf.ListField)
            current = sub
        name = pk_name(current) if part == "id" and index == 0 else part
        if name.startswith("_") or name not in current._fields:
            raise UnknownField(path)
        field = current._fields[name]
        db_parts.append(field.db_field)
    if field is None:  # not reached: ``parts`` is never empty here (a real check, kept under ``python -O``)
        raise UnknownField(path)
    return FieldPath(parts, ".".join(db_parts), field, in_list)


def conjunction(*clauses: Mapping[str, Any] | None) -> dict[str, Any]:
    """All ``clauses`` as one filter, flat where their keys do not collide.

    ``{"_id": x}`` beside an empty base filter stays ``{"_id": x}``: query
    planners (SecantusDB's in particular) pick an index for a flat equality
    far more reliably than for the same condition wrapped in ``$and``.
    """
    merged: dict[str, Any] = {}
    rest: list[Mapping[str, Any]] = []
    for clause in clauses:
        if not clause:
            continue
        if merged.keys() & clause.keys():
            rest.append(clause)
        else:
            merged.update(clause)
    if rest:
        return {"$and": [merged, *rest]}
    return merged
