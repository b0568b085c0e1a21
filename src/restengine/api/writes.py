"""Writing a resource through its Document: validation, ``clean()``, signals, hooks.

Every write builds or changes a real Document instance and saves it the way
the legacy code would. Conditional writes (``If-Match``) are compare-and-set
in the database: the update or delete only matches while the stored document
is still exactly the one whose ETag the client sent, so no version field is
needed and none is written.
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import mongoengine
from bson import DBRef, ObjectId
from mongoengine import fields as mf
from mongoengine import signals
from mongoengine.base.common import _document_registry
from mongoengine.errors import SaveConditionError
from pymongo.errors import BulkWriteError

from restengine.api.codec import UNREADABLE, input_values, pk_value, stored_document, unreadable_fields
from restengine.api.model import DeleteRule, conjunction, delete_files, delete_rules, embedded_type, item_field, pk_name
from restengine.api.outcome import Phases
from restengine.api.resource import Resource
from restengine.errors import (
    DUPLICATE_KEY,
    Conflict,
    Forbidden,
    InputError,
    NotFound,
    PreconditionFailed,
    TooManyItems,
    duplicate_message,
    unique_index_fields,
)

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- building documents


def _document_class(resource: Resource, body: Mapping[str, Any]) -> type[Any]:
    """The class to create: the resource's, or a subclass named by ``_cls``."""
    name = body.get("_cls")
    cls: type[Any] = resource.doc_cls
    if name is None or name == cls._class_name:
        return cls
    if resource.with_cls and name in cls._subclasses:
        sub: type[Any] = mongoengine.base.get_document(name)
        return sub
    raise InputError({"_cls": f"must be one of {list(cls._subclasses)}"})


def build(resource: Resource, body: Any) -> Any:
    """A new, unsaved Document from a JSON object; raises :class:`InputError`."""
    if not isinstance(body, dict):
        raise InputError({"": "must be a JSON object"})
    cls = _document_class(resource, body)
    body = _pk_alias(cls, body)
    fields = {k: v for k, v in body.items() if k != "id"}
    # a subclass served on its own keeps its resource's read-only and hidden fields (Resource.writable_for)
    writable = resource.writable_for(cls)
    values, errors = input_values(cls, fields, writable, served=resource.serves)
    doc = None
    if errors:  # report the required fields missing too, not only the values that did not parse
        for name, field in cls._fields.items():
            if field.required and field.default is None and name in writable and name not in body:
                errors.setdefault(name, "Field is required")
    else:
        try:
            doc = cls(**values)
        except (mongoengine.ValidationError, ValueError, TypeError, ArithmeticError) as exc:
            errors[""] = str(exc)
    if "id" in body:
        try:
            pk = pk_value(cls, body["id"])
        except (ValueError, TypeError):
            errors["id"] = "not a valid id for this resource"
        else:
            if doc is not None:
                doc.pk = pk
    if errors:
        raise InputError(errors)
    return doc


def _pk_alias(cls: type[Any], body: Mapping[str, Any]) -> dict[str, Any]:
    """The body with the primary key's attribute name (e.g. ``code``) read as ``id``.

    Raises :class:`InputError` when both are given and differ.
    """
    pk = pk_name(cls)
    body = dict(body)
    if pk != "id" and pk in body:
        value = body.pop(pk)
        if "id" in body and body["id"] != value:
            raise InputError({pk: "differs from id"})
        body["id"] = value
    return body


Reference = tuple[tuple[str, ...], DBRef, Any]  # (field path, DBRef, the referenced class or None)


def _references(doc: Any, prefix: tuple[str, ...] = ()) -> list[Reference]:
    """Every (field path, DBRef, referenced class) a document and its embedded documents refer to.

    Paths include list positions (``("lines", "0", "product")``), like
    MongoEngine's ``ValidationError.to_dict()``. The class is ``None`` when
    MongoEngine knows none by the stored name.
    """
    found: list[Reference] = []
    for name, field in doc._fields.items():
        value = doc._data.get(name)
        elements = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
        for position, element in elements:
            path = (*prefix, name) if position is None else (*prefix, name, str(position))
            if isinstance(element, DBRef):
                found.append((path, element, getattr(item_field(field), "document_type", None)))
            elif isinstance(element, dict) and isinstance(element.get("_ref"), DBRef):
                found.append((path, element["_ref"], _document_registry.get(str(element.get("_cls")))))
            elif isinstance(element, mongoengine.EmbeddedDocument):
                found += _references(element, path)
            elif (
                isinstance(element, mongoengine.Document)
                and isinstance(field, (mf.ReferenceField, mf.GenericReferenceField, mf.ListField))
                and element.pk is not None
            ):
                found.append((path, DBRef(element._get_collection_name(), element.pk), type(element)))
    return found


def _nest(errors: dict[str, Any], path: tuple[str, ...], message: str) -> None:
    for step in path[:-1]:
        errors = errors.setdefault(step, {})
    errors[path[-1]] = message


def check_references(
    docs: Sequence[Any], served: Callable[[type[Any]], bool] | None = None
) -> dict[int, dict[str, Any]]:
    """Errors for references to documents that do not exist: one query per referenced collection.

    With ``served``, only references to served classes are looked up. A body cannot set a
    reference to another class (parsing refuses any id of it alike), so those are stored
    values left unchanged, and no answer may depend on whether their documents exist.
    """
    wanted: dict[tuple[str, str], set[Any]] = defaultdict(set)
    refs = [
        [(path, ref) for path, ref, cls in _references(doc) if served is None or (cls is not None and served(cls))]
        for doc in docs
    ]
    for doc, doc_refs in zip(docs, refs, strict=True):
        database = doc._get_db().name
        for _, ref in doc_refs:
            wanted[(ref.database or database, ref.collection)].add(ref.id)
    existing: dict[tuple[str, str], set[Any]] = {}
    for (database, collection), ids in wanted.items():
        cursor = docs[0]._get_db().client[database][collection].find({"_id": {"$in": list(ids)}}, {"_id": 1})
        existing[(database, collection)] = {raw["_id"] for raw in cursor}
    errors: dict[int, dict[str, Any]] = {}
    for index, (doc, doc_refs) in enumerate(zip(docs, refs, strict=True)):
        database = doc._get_db().name
        for path, ref in doc_refs:
            if ref.id not in existing[(ref.database or database, ref.collection)]:
                message = f"refers to a missing document ({ref.collection} {ref.id})"
                _nest(errors.setdefault(index, {}), path, message)
    return errors


def validate(docs: Sequence[Any], served: Callable[[type[Any]], bool] | None = None) -> None:
    """Reference checks, then each Document's own ``validate()`` (which runs ``clean()``).

    ``served``: which referenced classes are checked (see :func:`check_references`).
    Raises :class:`InputError` with errors keyed by field (one document) or by
    index (several).
    """
    errors: dict[int, Any] = {}
    for index, doc in enumerate(docs):
        try:
            doc.validate()
        except mongoengine.ValidationError as exc:
            errors[index] = exc.to_dict() or {"": exc.message}
        except ArithmeticError as exc:  # a field's own checks on a value it cannot represent
            errors[index] = {"": str(exc) or type(exc).__name__}
    for index, missing in check_references(docs, served).items():
        errors[index] = {**missing, **errors.get(index, {})}  # the Document's own message wins
    if errors:
        raise InputError(errors[0] if len(docs) == 1 else {str(i): e for i, e in sorted(errors.items())})


def hook(resource: Resource, name: str, doc: Any) -> None:
    hook: Callable[[Any], None] | None = getattr(resource.options, name)
    if hook is not None:
        hook(doc)


# ---------------------------------------------------------------- create


def assign_ids(docs: Sequence[Any]) -> None:
    """Give new documents their ObjectIds now, so a failed batch can be undone exactly."""
    for doc in docs:
        if doc.pk is None and isinstance(doc._fields[pk_name(type(doc))], mf.ObjectIdField):
            doc.pk = ObjectId()


def _require_reach(resource: Resource, docs: Sequence[Any]) -> None:
    """Raise :class:`Forbidden` unless every document is one the caller's rule reaches (nobody writes outside it)."""
    if resource.scope is not None and not all(resource.reaches(doc.to_mongo()) for doc in docs):
        raise Forbidden(f"Your rule for {resource.name} does not reach a document like this one.")


def prepare_create(resource: Resource, body: Any, phases: Phases) -> Any:
    """Build, validate and check one new document (its id given now); nothing is written."""
    doc = build(resource, body)
    with phases.before():
        validate([doc], resource.serves)
    _require_reach(resource, [doc])
    hook(resource, "before_create", doc)
    assign_ids([doc])
    return doc


def insert(resource: Resource, doc: Any, phases: Phases) -> None:
    """Insert a prepared document (see :func:`prepare_create`), then run the after-create hook."""
    with phases.sending(), _unique(resource):
        doc.save(force_insert=True, validate=False)
    hook(resource, "after_create", doc)


@contextlib.contextmanager
def _unique(resource: Resource) -> Iterator[None]:
    """A unique-index violation while saving one document: 409 naming the API's fields."""
    try:
        yield
    except mongoengine.NotUniqueError as exc:
        server_error = exc.__cause__ or exc.__context__
        fields = unique_fields(resource, getattr(server_error, "details", None))
        raise Conflict(duplicate_message(fields)) from None


def unique_fields(resource: Resource, error: Mapping[str, Any] | None) -> list[str] | None:
    """The fields, as the client names them, of the unique index a duplicate-key ``error`` names.

    ``error`` is a write error or ``DuplicateKeyError.details``. ``None`` when
    the server does not say, or when some field of the index is one the client
    does not see (hidden, or not a field of the resource): nothing is told then.
    ``_id`` is ``id``; a path into embedded documents is dotted (``shipping.city``).
    """
    paths = unique_index_fields(error)
    if not paths:
        return None
    classes = [resource.doc_cls, *(mongoengine.base.get_document(n) for n in resource.doc_cls._subclasses)]
    names: list[str] = []
    for path in paths:
        if path == "_id":
            names.append("id")
            continue
        name = next((n for n in (_attribute_path(cls, path) for cls in classes) if n is not None), None)
        if name is None or name[0] not in resource.exposed:
            return None
        names.append(".".join(name))
    return names


def _attribute_path(doc_cls: type[Any], path: str) -> list[str] | None:
    """The attribute names along a stored dotted path, through embedded documents; ``None`` if it is no field."""
    names: list[str] = []
    current: type[Any] | None = doc_cls
    for part in path.split("."):
        if current is None:
            return None
        name = next((n for n, f in current._fields.items() if f.db_field == part and n != "_cls"), None)
        if name is None:
            return None
        names.append(name)
        current = embedded_type(current._fields[name])
    return names


def prepare_many(resource: Resource, bodies: list[Any], phases: Phases, *, max_items: int) -> list[Any]:
    """Build, validate and check every new document of an array POST (ids given now); nothing is written.

    More than ``max_items`` documents is :class:`TooManyItems`.
    """
    if not bodies:
        raise InputError({"": "the array is empty"})
    if len(bodies) > max_items:
        raise TooManyItems(len(bodies), max_items)
    docs: list[Any] = []
    errors: dict[str, Any] = {}
    for index, body in enumerate(bodies):
        try:
            docs.append(build(resource, body))
        except InputError as exc:
            errors[str(index)] = exc.errors
    if errors:
        raise InputError(errors)
    with phases.before():
        validate(docs, resource.serves)
    _require_reach(resource, docs)
    for doc in docs:
        hook(resource, "before_create", doc)
    assign_ids(docs)
    return docs


def insert_many(resource: Resource, docs: list[Any], phases: Phases, *, undone: Callable[[], None]) -> None:
    """All-or-nothing: insert prepared documents (see :func:`prepare_many`) in one round trip.

    A write error part-way (a unique index, a document the server refuses)
    removes what that insert wrote and raises :class:`Conflict` (or the 422 of
    the refusal). ``undone`` is called once a partial insert has been removed
    (reads meanwhile may have seen the documents: the caller invalidates what
    it cached), before the error is raised.
    """
    # What QuerySet.insert does (one insert_many, the bulk-insert signals), but
    # undoing a partial insert exactly: insert() refuses documents whose
    # primary key is already set, and reports a batch failure without counts.
    signals.pre_bulk_insert.send(resource.doc_cls, documents=docs)
    with phases.sending() as progress:
        try:
            resource.collection().insert_many([doc.to_mongo() for doc in docs], ordered=True)
        except BulkWriteError as exc:
            written = int(exc.details.get("nInserted", 0))
            if written:
                progress.applied = True
                try:
                    resource.collection().delete_many({"_id": {"$in": [d.pk for d in docs[:written]]}})
                finally:
                    undone()
            _refused(resource, exc)
            raise
    signals.post_bulk_insert.send(resource.doc_cls, documents=docs, loaded=False)
    for doc in docs:
        doc._created = False
        hook(resource, "after_create", doc)


def _refused(resource: Resource, exc: BulkWriteError) -> None:
    """Raise the client's error for the write error that stopped an array insert (all of it undone)."""
    first = next(iter(exc.details.get("writeErrors", [])), None)
    if first is None:
        return
    position = str(first.get("index"))
    if first.get("code") in DUPLICATE_KEY:
        fields = unique_fields(resource, first)
        message = duplicate_message(fields)
        errors = {name: "must be unique" for name in fields} if fields else {"": message}
        raise Conflict(f"{message} Nothing was inserted.", errors={position: errors}) from None
    # The server's message names the collection and stored fields: logged, never sent.
    log.info("array insert into %s refused: code %s: %s", resource.name, first.get("code"), first.get("errmsg"))
    raise InputError({position: {"": "the database refused this document; nothing was inserted"}}) from None


# ---------------------------------------------------------------- change and delete


def current(resource: Resource, pk: Any) -> dict[str, Any]:
    """The stored document, whole (a write compares against all of it); :class:`NotFound` if absent."""
    raw = resource.collection().find_one(conjunction(resource.base_filter(), {"_id": pk}))
    if raw is None:
        raise NotFound()
    return dict(raw)


def unchanged_since(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A filter matching the stored document only while it is exactly ``raw``."""
    return {"$expr": {"$eq": ["$$ROOT", {"$literal": raw}]}}


def apply(resource: Resource, raw: dict[str, Any], target: Mapping[str, Any], representation: Mapping[str, Any]) -> Any:
    """A Document loaded from ``raw`` with its writable fields set to those of ``target``.

    ``target`` is the full new representation (after a merge patch, or a PUT
    body); ``representation`` is the current one. A read-only field may be
    repeated unchanged but not changed; absent writable fields are reset to
    their default.
    """
    unreadable = unreadable_fields(representation)
    doc = stored_document(resource.doc_cls, raw, unreadable)  # unreadable values left out: they read as null
    target = _pk_alias(type(doc), target)
    writable = resource.writable_for(type(doc))
    errors: dict[str, Any] = {}
    for name, value in target.items():
        if name in ("id", "_cls"):
            if value != representation.get(name):
                errors[name] = "cannot be changed"
        elif (
            name != UNREADABLE
            and name not in writable
            and (name not in resource.exposed or value != representation.get(name))
        ):
            errors[name] = "unknown or read-only field"
    changes = {n: v for n, v in target.items() if n in writable and v != representation.get(n)}
    values, value_errors = input_values(type(doc), changes, writable, served=resource.serves)
    errors.update(value_errors)
    if errors:
        raise InputError(errors)
    for name, value in values.items():
        setattr(doc, name, value)
    for name in writable - set(target):
        field = doc._fields.get(name)
        if field is not None and (representation.get(name) is not None or name in unreadable):
            setattr(doc, name, field.default() if callable(field.default) else field.default)
    for name in unreadable & (set(values) | (writable - set(target))):
        doc._mark_as_changed(name)  # replaces the stored value even when the new one equals the left-out one
    return doc


def save_changes(resource: Resource, doc: Any, raw: dict[str, Any], phases: Phases, *, conditional: bool) -> Any:
    """Validate and save a changed Document; compare-and-set when ``conditional``.

    Never creates a document: if it was deleted meanwhile the answer is 404,
    and if it changed meanwhile (conditional) 412.
    """
    with phases.before():
        validate([doc], resource.serves)
    _require_reach(resource, [doc])
    hook(resource, "before_update", doc)
    # The document must still be one the caller reaches when the write lands.
    condition = conjunction(resource.scope_filter(), unchanged_since(raw) if conditional else {})
    try:
        with phases.sending(), _unique(resource):
            doc.save(validate=False, save_condition={"__raw__": condition})
    except SaveConditionError:
        if conditional:
            raise PreconditionFailed("The item changed since the ETag in If-Match was issued.") from None
        raise NotFound() from None
    hook(resource, "after_update", doc)
    return doc


REFERRED_TO = "Other items refer to this one; it cannot be deleted while they do."


def delete(resource: Resource, raw: dict[str, Any], phases: Phases, *, conditional: bool) -> None:
    """Delete one document, then apply its delete rules; compare-and-set when ``conditional``.

    The order is MongoEngine's but for one step: DENY rules are checked first
    (nothing written), then the document itself is deleted with its condition
    (still in the caller's scope and, when ``conditional``, still exactly
    ``raw``), and only once that delete matched are the CASCADE, NULLIFY and
    PULL rules applied to its dependents. A document that changed meanwhile is
    a 412 with no dependent touched. (MongoEngine applies the rules before the
    delete, so a failed condition would leave them applied.)
    """
    cls = resource.doc_cls
    doc = stored_document(cls, raw, frozenset())
    hook(resource, "before_delete", doc)
    rules = delete_rules(cls)
    with phases.before():
        denied = _denied(cls, [doc], {(cls._get_collection_name(), doc.pk)})
    if denied:
        # Never the referring class or field in the message: the client may not see them.
        raise Conflict(REFERRED_TO)
    query = conjunction(resource.scope_filter(), {"_id": raw["_id"], **(unchanged_since(raw) if conditional else {})})
    signals.pre_delete.send(type(doc), document=doc)
    with phases.sending() as progress:
        if not resource.collection().delete_one(query).deleted_count:
            if conditional:
                raise PreconditionFailed("The item changed since the ETag in If-Match was issued.")
            raise NotFound()
        progress.applied = True
        _apply_delete_rules(doc, rules)
        delete_files(doc)
    signals.post_delete.send(type(doc), document=doc)
    hook(resource, "after_delete", doc)


def _denied(cls: type[Any], docs: list[Any], seen: set[tuple[str, Any]]) -> bool:
    """Whether deleting ``docs`` (of ``cls``) would meet a DENY rule, through every CASCADE it sets off.

    Read only, before anything is written: the document is deleted first and its rules applied after, so a
    DENY met down a cascade must be known up front. ``seen``: (collection, pk) already counted as deleted.
    """
    for rule_cls, name, rule in delete_rules(cls):
        refs = rule_cls.objects(**{f"{name}__in": docs})
        if rule == mongoengine.DENY and refs.limit(1).count():
            return True
        if rule == mongoengine.CASCADE:
            collection = rule_cls._get_collection_name()
            reached = [ref for ref in refs.only(pk_name(rule_cls)) if (collection, ref.pk) not in seen]
            seen.update((collection, ref.pk) for ref in reached)
            if reached and _denied(rule_cls, reached, seen):
                return True
    return False


def _apply_delete_rules(doc: Any, rules: Sequence[DeleteRule]) -> None:
    """What ``QuerySet.delete`` does to the dependents of ``doc`` (already deleted), DENY aside."""
    for rule_cls, name, rule in rules:
        refs = rule_cls.objects(**{f"{name}__in": [doc]})
        if rule == mongoengine.CASCADE:
            # Like QuerySet.delete: the deleted document is never deleted again through a reference to itself.
            done = {doc.pk} if rule_cls._get_collection_name() == type(doc)._get_collection_name() else set()
            refs = refs.filter(pk__nin=list(done))
            if refs.count():
                refs.delete(cascade_refs=done)
        elif rule == mongoengine.NULLIFY:
            refs.update(**{f"unset__{name}": 1})
        elif rule == mongoengine.PULL:
            refs.update(**{f"pull_all__{name}": [doc]})
