"""A served Document class: its options, resolved once into the sets the views use."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any

from bson.codec_options import DatetimeConversion
from mongoengine.queryset import QuerySet
from mongoengine.queryset.manager import QuerySetManager

from restengine.api.fields import field_type
from restengine.api.filters import covering_key
from restengine.api.model import UnknownField, conjunction, item_field, public_fields, resolve
from restengine.api.operators import ALL_OPERATORS, EXPENSIVE
from restengine.api.options import ResourceOptions


def snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def default_name(doc_cls: type[Any]) -> str:
    """The collection name; the class name in snake_case for a subclass sharing its parent's collection."""
    if "." in doc_cls._class_name:
        return snake_case(doc_cls.__name__)
    return str(doc_cls._get_collection_name())


_STATIC_FILTERS: dict[type[Any], dict[str, Any]] = {}  # see Resource.manager_filter (never mutated)


COUNT_GRANT = "count"  # in ``expensive``: counts no index serves are allowed
_RANGE = frozenset({"$eq", "$in", "$gt", "$gte", "$lt", "$lte", "$all"})


def _index_condition(condition: Any) -> bool:
    """Whether an index on the field can narrow ``condition`` down: equality, a range, or a case-sensitive
    prefix; not ``$ne``, ``$nin``, ``$exists`` or a regex anywhere but at the start."""
    if not isinstance(condition, Mapping) or not any(str(k).startswith("$") for k in condition):
        return True
    if "$regex" in condition:
        pattern = condition["$regex"]
        return isinstance(pattern, str) and pattern.startswith("^") and "i" not in str(condition.get("$options", ""))
    return bool(set(condition) & _RANGE)


def _plain_manager(doc_cls: type[Any]) -> bool:
    """Whether ``doc_cls.objects`` is MongoEngine's own manager with its own QuerySet: a filter that never changes."""
    manager: Any = next((vars(cls)["objects"] for cls in doc_cls.__mro__ if "objects" in vars(cls)), None)
    if type(manager) is not QuerySetManager:
        return False
    return manager.get_queryset is None and doc_cls._meta.get("queryset_class", QuerySet) is QuerySet


class Resource:
    """One Document class as a REST resource.

    Raises ``ValueError`` at registration when an option names a field the
    class does not have, so a typo fails at start-up, not per request.
    ``lookup`` gives the resource of the same API serving a class, or ``None``
    (``Api.resource_for``); without one, no class counts as served.
    """

    def __init__(
        self,
        doc_cls: type[Any],
        options: ResourceOptions,
        lookup: Callable[[type[Any]], Resource | None] | None = None,
    ) -> None:
        self.doc_cls = doc_cls
        self._lookup = lookup
        self.options = options
        self.name = options.name or default_name(doc_cls)
        self.collection_name: str = doc_cls._get_collection_name()
        self.with_cls = bool(doc_cls._meta.get("allow_inheritance"))
        self.methods = frozenset({"GET", "HEAD", *(m.upper() for m in options.methods)})
        classes = [doc_cls, *self._subclasses()]
        names: list[str] = []
        for cls in classes:
            names += [n for n in public_fields(cls) if n not in names]
        self.pk = names[0]
        self.all_fields = frozenset(names)
        unknown = [n for n in (*(options.fields or ()), *options.hidden, *options.read_only) if n not in names]
        if unknown:
            raise ValueError(f"{doc_cls.__name__}: unknown fields in options: {unknown}")
        shown = [n for n in (options.fields or names) if n not in options.hidden]
        self.exposed = frozenset(shown) | {self.pk}
        self.hidden = frozenset(options.hidden)
        # Never shown, so never filtered or sorted on either: that would leak them.
        self.unexposed = frozenset(names) - self.exposed
        self.writable = frozenset(n for n in shown if n not in options.read_only and n != self.pk)
        self.filterable = self._filterable()
        for path in options.sortable or ():
            self._check_path(path)
        # The documents one caller reaches (see ``restricted``): alternatives of
        # stored path -> stored value; ``None``: every document.
        self.scope: list[dict[str, Any]] | None = None
        self.variant = ""  # part of cache keys: what makes this caller's responses differ

    def restricted(
        self, hidden: frozenset[str], read_only: frozenset[str], scope: list[dict[str, Any]] | None
    ) -> Resource:
        """This resource as one caller reaches it: more hidden and read-only fields, only ``scope``'s documents.

        ``scope`` holds alternatives (stored dotted path -> stored value, all
        equal); ``[]`` reaches no document, ``None`` every one.
        """
        options = dataclasses.replace(
            self.options,
            name=self.name,
            hidden=[*self.options.hidden, *sorted(hidden - self.hidden)],
            read_only=[*self.options.read_only, *sorted(read_only - set(self.options.read_only))],
        )
        variant = Resource(self.doc_cls, options, self._lookup)
        variant.scope = scope
        key = repr((sorted(hidden), sorted(read_only), scope)).encode()
        variant.variant = "~" + hashlib.blake2b(key, digest_size=12).hexdigest()
        return variant

    def scope_filter(self) -> dict[str, Any]:
        """The filter of the documents this (possibly restricted) resource reaches; ``{}`` for all."""
        if self.scope is None:
            return {}
        if not self.scope:
            return {"_id": {"$in": []}}
        return self.scope[0] if len(self.scope) == 1 else {"$or": list(self.scope)}

    def reaches(self, stored: Mapping[str, Any]) -> bool:
        """Whether a document (its stored form) is one this resource reaches: what a write may leave behind."""
        if self.scope is None:
            return True
        return any(all(_matches(_stored_at(stored, path), value) for path, value in alt.items()) for alt in self.scope)

    def serves(self, doc_cls: type[Any]) -> bool:
        """Whether the API of this resource serves ``doc_cls``: what a write through it may refer to."""
        return self._lookup is not None and self._lookup(doc_cls) is not None

    def own_resource(self, cls: type[Any]) -> Resource | None:
        """The resource serving ``cls``, a subclass of this one's class, on its own (``None``: only this one)."""
        if cls is self.doc_cls or self._lookup is None:
            return None
        own = self._lookup(cls)
        return None if own is None or own.doc_cls is self.doc_cls else own

    def writable_for(self, cls: type[Any]) -> frozenset[str]:
        """What a client may set on a ``cls`` document through this resource.

        A subclass served by its own resource keeps that resource's rules here too: only the fields both
        resources let a client write (its hidden and read-only fields cannot be written through the parent).
        """
        own = self.own_resource(cls)
        return self.writable if own is None else self.writable & own.writable

    def hidden_for(self, class_name: Any) -> frozenset[str]:
        """The fields of a stored document of class ``class_name`` (its ``_cls``) this resource does not show
        beyond its own hidden ones: those its class's own resource hides."""
        if not self.with_cls or class_name is None or class_name == self.doc_cls._class_name:
            return frozenset()
        if class_name not in self.doc_cls._subclasses:
            return frozenset()
        from mongoengine.base import get_document

        own = self.own_resource(get_document(class_name))
        return frozenset() if own is None else own.unexposed - {self.pk}

    def stored_pk(self, pk: Any) -> Any:
        """A primary key as the database stores it (a string for ``UUIDField(binary=False)``)."""
        return self.doc_cls._fields[self.pk].to_mongo(pk)

    def _subclasses(self) -> list[type[Any]]:
        from mongoengine.base import get_document

        return [get_document(name) for name in self.doc_cls._subclasses if name != self.doc_cls._class_name]

    def _check_path(self, path: str) -> None:
        try:
            resolve(self.doc_cls, path)
        except UnknownField:
            raise ValueError(f"{self.doc_cls.__name__}: unknown field path in options: {path!r}") from None

    def _filterable(self) -> dict[str, frozenset[str]]:
        """Client path -> the operators allowed on it and below it (the most specific path decides).

        Every exposed field by default, each with every operator but the :data:`EXPENSIVE` ones; the
        operators a ``filterable`` mapping names are the owner's choice; ``expensive`` adds the others.
        """
        spec, cheap = self.options.filterable, ALL_OPERATORS - EXPENSIVE
        table: dict[str, frozenset[str]] = (
            dict.fromkeys(sorted(self.exposed), cheap)
            if spec is None
            else {path: frozenset(ops) for path, ops in spec.items()}
            if isinstance(spec, Mapping)
            else dict.fromkeys(spec, cheap)
        )
        if spec is not None:  # the default's names come from the classes (a subclass's fields included)
            for path in table:
                self._check_path(path)
        for grant in self.options.expensive:
            if grant == COUNT_GRANT:
                continue  # not a filter (see counts_freely)
            if grant == "*":
                table = {path: ops | EXPENSIVE for path, ops in table.items()}
                continue
            head, _, tail = grant.rpartition("__")
            path, op = (head, tail) if tail in EXPENSIVE else (grant, "")
            self._check_path(path)
            above = covering_key(self.doc_cls, path, table)
            if above is None:
                raise ValueError(f"{self.doc_cls.__name__}: expensive={grant!r} names a field clients cannot filter on")
            table[path] = table.get(path, table[above]) | (frozenset({op}) if op else EXPENSIVE)
        return table

    @property
    def counts_freely(self) -> bool:
        """Whether clients may ask for counts no index serves (``expensive`` holds ``"count"`` or ``"*"``)."""
        return bool({COUNT_GRANT, "*"} & set(self.options.expensive))

    @cached_property
    def _indexes(self) -> list[Any]:
        from restengine.ops.doctor.indexes import ID_KEY, Index, declared_indexes

        return [Index(ID_KEY, unique=True), *declared_indexes([self.doc_cls, *self._subclasses()])]

    def index_serves(self, query: Mapping[str, Any]) -> bool:
        """Whether an index the classes declare (or ``_id``'s) narrows ``query`` (a raw filter) down: one of
        its top-level conditions is one an index serves, on an index's first key (second after ``_cls``).
        An empty query is served: the collection's own count."""
        from restengine.ops.doctor.queries import serves_filter

        if not query:
            return True
        after_cls = "_cls" in query
        for path, condition in query.items():
            if path == "$and" and isinstance(condition, list):
                if any(isinstance(part, Mapping) and part and self.index_serves(part) for part in condition):
                    return True
            elif (
                not path.startswith("$")
                and _index_condition(condition)
                and serves_filter(self._indexes, path, after_cls)
            ):
                return True
        return False

    @cached_property
    def projection(self) -> dict[str, int] | None:
        """A real projection for reads: the exposed fields' stored names (and ``_cls``)."""
        return self.projection_for(self.exposed)

    def projection_for(self, names: frozenset[str]) -> dict[str, int] | None:
        """The projection of a read of ``names``; ``None`` (the whole document, the simplest query, as a
        hand-written ``find_one`` sends) when that is every field the classes declare."""
        if names >= self.all_fields:
            return None
        projection: dict[str, int] = {"_id": 1}
        for cls in (self.doc_cls, *self._subclasses()):
            for name in names:
                field = cls._fields.get(name)
                if field is not None and name != self.pk:
                    projection[field.db_field] = 1
        if self.with_cls:
            projection["_cls"] = 1
        return projection

    def base_filter(self) -> dict[str, Any]:
        """The filter of every query: the class's own ``objects`` manager's (``_cls`` of a subclass, a custom
        queryset's) and, for a restricted resource, its scope."""
        return conjunction(self.manager_filter(), self.scope_filter())

    def manager_filter(self) -> dict[str, Any]:
        """The filter of the class's ``objects``: worked out once when it is MongoEngine's plain manager (the
        same for every request), else on every call (a custom manager may depend on anything)."""
        static = _STATIC_FILTERS.get(self.doc_cls)
        if static is not None:
            return static
        query: dict[str, Any] = self.doc_cls.objects._query
        if _plain_manager(self.doc_cls):
            _STATIC_FILTERS[self.doc_cls] = query
        return query

    def collection(self) -> Any:
        """The class's collection, decoding dates out of Python's range as ``DatetimeMS`` (an unreadable value,
        see ``codec``) instead of failing the whole query."""
        found = self.doc_cls._get_collection()
        cached = self.__dict__.get("_reading")
        if cached is None or cached[0] is not found:
            options = found.codec_options.with_options(datetime_conversion=DatetimeConversion.DATETIME_AUTO)
            cached = self.__dict__["_reading"] = (found, found.with_options(codec_options=options))
        return cached[1]

    def reference_target(self, path: str) -> tuple[Any, Any]:
        """(field path, referenced Document class) for an expandable reference path."""
        field_path = resolve(self.doc_cls, path)
        field = item_field(field_path.field)
        if not field_type(field).is_reference:
            raise UnknownField(path)
        return field_path, field.document_type


def _stored_at(stored: Mapping[str, Any], path: str) -> Any:
    value: Any = stored
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _matches(stored: Any, value: Any) -> bool:
    """Equality as MongoDB matches it: a list matches a value it holds."""
    return stored == value or (isinstance(stored, list) and value in stored)
