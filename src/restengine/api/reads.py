"""Reading a resource: one item, or a page of a filtered, sorted list.

Plain functions over a :class:`Resource` and already-parsed parameters; the
views parse the request and render. Every read is one ``find`` with a real
projection, decoded by the codec's fast path; ``expand`` adds one ``find``
per expanded field for the whole page, never one per item.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from bson import DBRef

from restengine.api.codec import decode_document
from restengine.api.model import FieldPath, UnknownField, conjunction
from restengine.api.resource import Resource
from restengine.errors import InvalidParameter


@dataclasses.dataclass(frozen=True)
class Expansion:
    """A reference path to replace by the referenced documents."""

    param: str  # as the client wrote it, e.g. "lines.product"
    path: FieldPath
    target: Resource


@dataclasses.dataclass
class Page:
    items: list[dict[str, Any]]
    last_raw: dict[str, Any] | None  # the last item's stored form, for the next cursor
    has_more: bool
    count: int | None = None


def parse_fields(resource: Resource, text: str | None) -> frozenset[str]:
    """``?fields=a,b``: the exposed attribute names to return (the id always comes)."""
    if not text:
        return resource.exposed
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in resource.exposed and n != "id"]
    if unknown or not names:
        raise InvalidParameter("fields", f"unknown fields: {', '.join(unknown) or '(empty)'}")
    return frozenset(names) | {resource.pk}


def parse_expand(
    resource: Resource, text: str | None, fields: frozenset[str], lookup: Callable[[type[Any]], Resource | None]
) -> list[Expansion]:
    """``?expand=author,lines.product``; ``lookup(doc_cls)`` gives the target's Resource, ``None`` if not served.

    Only a reference among the exposed fields whose target class is served can be
    expanded, and the target is decoded with its own resource's rules. Anything
    else (an unknown, hidden or non-reference field, a reference to a class the
    API does not serve) gets the same message, so the answer reveals nothing the
    resource does not show.
    """
    expansions: list[Expansion] = []
    for param in (p.strip() for p in (text or "").split(",")):
        if not param:
            continue
        try:
            path, target_cls = resource.reference_target(param.replace(".", "__"))
        except UnknownField:
            path, target_cls = None, None
        target = None
        if path is not None and path.attr_path[0] in resource.exposed:
            target = lookup(target_cls)
        if path is None or target is None:
            raise InvalidParameter("expand", f"{param!r} is not a reference this resource can expand")
        if path.attr_path[0] not in fields:
            raise InvalidParameter("expand", f"{param!r} is not among the returned fields")
        if any(e.param == param for e in expansions):
            raise InvalidParameter("expand", f"{param!r} given twice")
        expansions.append(Expansion(param, path, target))
    if len(expansions) > 5:
        raise InvalidParameter("expand", "at most 5 fields")
    return expansions


def decode(resource: Resource, raw: dict[str, Any], fields: frozenset[str]) -> dict[str, Any]:
    """A stored document as ``resource`` shows it; a subclass served on its own keeps its own hidden fields."""
    hidden = resource.hidden_for(raw.get("_cls")) if resource.with_cls else None
    return decode_document(resource.doc_cls, raw, fields - hidden if hidden else fields, resource.with_cls)


def get_item(
    resource: Resource, pk: Any, fields: frozenset[str], expansions: Sequence[Expansion] = ()
) -> dict[str, Any] | None:
    """The item with primary key ``pk``, or ``None``."""
    query = conjunction(resource.base_filter(), {"_id": pk})
    raw = resource.collection().find_one(query, resource.projection_for(fields))
    if raw is None:
        return None
    item = decode(resource, raw, fields)
    _expand([raw], [item], expansions)
    return item


def list_page(
    resource: Resource,
    *,
    filters: dict[str, Any],
    sort: list[tuple[str, int]],
    after: dict[str, Any] | None,
    limit: int,
    fields: frozenset[str],
    expansions: Sequence[Expansion] = (),
    count: str | None = None,
    skip: int = 0,
    read_preference: Any = None,
) -> Page:
    """One page: the items after the keyset position ``after`` (a filter), at most ``limit``, the first ``skip``
    of them passed over (an offset: profiles whose clients number their pages).

    ``count`` is ``"exact"`` or ``"estimated"`` (the collection's metadata count,
    used only when nothing narrows the query; otherwise it is exact). ``read_preference`` (a PyMongo read
    preference; ``None``: the client's) is where the page, its count and its expansions are read: the
    caller decides (see :mod:`restengine.replicas`).
    """
    narrowed = conjunction(resource.base_filter(), filters)
    projection = resource.projection_for(fields)
    if projection is not None:
        for key, _ in sort:
            projection.setdefault(key, 1)  # the cursor needs the sort values
    query = conjunction(narrowed, after)
    collection = _reading(resource, read_preference)
    raws = list(collection.find(query, projection, sort=sort, skip=skip, limit=limit + 1))
    has_more = len(raws) > limit
    raws = raws[:limit]
    items = [decode(resource, raw, fields) for raw in raws]
    _expand(raws, items, expansions, read_preference)
    total = None
    if count == "estimated" and not narrowed:
        total = collection.estimated_document_count()
    elif count is not None:
        total = collection.count_documents(narrowed)
    return Page(items, raws[-1] if raws else None, has_more, total)


def _reading(resource: Resource, read_preference: Any) -> Any:
    """``resource``'s collection, read with ``read_preference`` (``None``: the client's)."""
    collection = resource.collection()
    return collection if read_preference is None else collection.with_options(read_preference=read_preference)


# ---------------------------------------------------------------- expand


def _walk(value: Any, steps: Sequence[str]) -> Iterable[tuple[Any, str | int]]:
    """(container, key) pairs holding the value at ``steps`` below ``value``, through lists."""
    if isinstance(value, list):
        for element in value:
            yield from _walk(element, steps)
        return
    if not isinstance(value, dict) or steps[0] not in value:
        return
    if len(steps) == 1:
        child = value[steps[0]]
        if isinstance(child, list):
            yield from ((child, i) for i in range(len(child)))
        else:
            yield value, steps[0]
        return
    yield from _walk(value[steps[0]], steps[1:])


def _stored_id(value: Any) -> Any:
    return value.id if isinstance(value, DBRef) else value


def _expand(
    raws: list[dict[str, Any]],
    items: list[dict[str, Any]],
    expansions: Sequence[Expansion],
    read_preference: Any = None,
) -> None:
    """Replace reference ids by the referenced items: one query per expansion for all items, read where the
    page was (``read_preference``).

    A target restricted for the caller (``Resource.scope``) reads as ``null``
    where the caller may not read the referenced document.
    """
    for expansion in expansions:
        db_steps = expansion.path.db_path.split(".")
        ids = {
            _stored_id(container[key])
            for raw in raws
            for container, key in _walk(raw, db_steps)
            if container[key] is not None
        }
        if not ids:
            continue
        target = expansion.target
        found = _reading(target, read_preference).find(
            conjunction(target.base_filter(), {"_id": {"$in": list(ids)}}), target.projection
        )
        by_id = {str(raw["_id"]): decode(target, raw, target.exposed) for raw in found}
        for item in items:
            for container, key in _walk(item, list(expansion.path.attr_path)):
                ref = container[key]
                if isinstance(ref, str) and ref in by_id:
                    container[key] = by_id[ref]
                elif isinstance(ref, str) and target.scope is not None:
                    container[key] = None
