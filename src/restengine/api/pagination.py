"""Keyset (cursor) pagination: the ``sort``/``limit``/``cursor`` parameters and the page filter.

A page is ``find({"$and": [filter, keyset_filter(sort, values)]}).sort(sort).limit(n)``
where ``values`` are the sort-key values of the last document of the previous
page, carried by the client in an opaque, signed cursor. ``_id`` is always the
last sort key, so the order is total and no document is skipped or repeated,
even while documents are inserted between pages.

Assumption: each sort field holds one BSON type (numbers count as one type),
plus null or missing, and never an array or NaN. The filters rely on MongoDB's
sort order putting null/missing lowest and on ``$gt``/``$lt`` comparing only
values of the bound's type; mixed types would make pages skip documents.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import re
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import bson
from bson import DBRef, Decimal128, ObjectId
from bson.binary import UuidRepresentation
from bson.code import Code
from bson.codec_options import CodecOptions
from bson.errors import BSONError
from mongoengine import fields as mf
from mongoengine.base import BaseField

from restengine.api.fields import field_type
from restengine.api.model import FieldPath, UnknownField, pk_name, resolve
from restengine.config import check_secret
from restengine.errors import InvalidParameter

SortKey = tuple[str, int]
"""A stored (dotted) field path and its direction: 1 ascending, -1 descending."""

MAX_SORT_KEYS = 5
DEFAULT_SORT: list[SortKey] = [("_id", 1)]


def _names(doc_cls: type[Any], fp: FieldPath) -> set[str]:
    """The names a configuration may use for ``fp`` (the primary key is both ``id`` and its attribute)."""
    return {fp.name, "id", pk_name(doc_cls)} if fp.db_path == "_id" else {fp.name}


def _is_hidden(doc_cls: type[Any], fp: FieldPath, hidden: Collection[str]) -> bool:
    prefixes = {"__".join(fp.attr_path[: i + 1]) for i in range(len(fp.attr_path))}
    return bool((prefixes | _names(doc_cls, fp)) & set(hidden))


def parse_sort(
    doc_cls: type[Any],
    text: str | None,
    *,
    sortable: Collection[str] | None,
    hidden: Collection[str] = (),
) -> list[SortKey]:
    """Parse ``?sort=-price,title`` (attribute names, ``__`` into embedded documents, ``id``).

    Returns db paths with directions, always ending with ``_id`` (ascending,
    unless the client sorted on the primary key: its direction is kept).
    ``None`` gives ``[("_id", 1)]``. ``hidden`` names (and paths below them)
    are refused; so is anything not in ``sortable``, or, when it is ``None``,
    any field holding documents, dicts, lists or values of no fixed type. A
    list, or a path through one, is refused even if listed in ``sortable``.
    Raises :class:`InvalidParameter` ("sort") for every refusal, including
    empty items (so ``?sort=`` too), duplicates and more than five keys.
    """
    if text is None:
        return list(DEFAULT_SORT)
    items = [item.strip() for item in text.split(",")]
    if len(items) > MAX_SORT_KEYS:
        raise InvalidParameter("sort", f"at most {MAX_SORT_KEYS} sort keys are allowed")
    keys: list[SortKey] = []
    for item in items:
        direction = -1 if item.startswith("-") else 1
        name = item[1:] if direction == -1 else item
        if not name:
            raise InvalidParameter("sort", "empty sort key")
        try:
            fp = resolve(doc_cls, name)
        except UnknownField:
            raise InvalidParameter("sort", f"unknown field {name!r}") from None
        if _is_hidden(doc_cls, fp, hidden):
            raise InvalidParameter("sort", f"unknown field {name!r}")
        if fp.in_list or isinstance(fp.field, mf.ListField):
            raise InvalidParameter("sort", f"cannot sort on {name!r}: it is or goes through a list")
        allowed = _is_scalar(fp.field) if sortable is None else bool(_names(doc_cls, fp) & set(sortable))
        if not allowed:
            raise InvalidParameter("sort", f"sorting on {name!r} is not allowed")
        if any(key == fp.db_path for key, _ in keys):
            raise InvalidParameter("sort", f"{name!r} appears more than once")
        keys.append((fp.db_path, direction))
    if not any(key == "_id" for key, _ in keys):
        keys.append(("_id", 1))
    return keys


def _is_scalar(field: BaseField) -> bool:
    """Whether sorting may use ``field`` unless ``sortable`` lists it: not documents, dicts, lists or mixed types."""
    return field_type(field).is_sortable(field)


_LIMIT = re.compile(r"-?[0-9]{1,12}")


def parse_limit(text: str | None, *, default: int, maximum: int) -> int:
    """Parse ``?limit=``: ``default`` when absent, else an integer from 1 to ``maximum``.

    Raises :class:`InvalidParameter` ("limit") for anything else.
    """
    if text is None:
        return default
    if not _LIMIT.fullmatch(text):
        raise InvalidParameter("limit", f"must be an integer from 1 to {maximum}")
    value = int(text)
    if value < 1:
        raise InvalidParameter("limit", "must be at least 1")
    if value > maximum:
        raise InvalidParameter("limit", f"must be at most {maximum}")
    return value


def sort_values(raw: Mapping[str, Any], sort: Sequence[SortKey]) -> list[Any]:
    """The values of the sort keys in a raw stored document (dotted paths; missing or null -> None)."""
    values: list[Any] = []
    for path, _ in sort:
        current: Any = raw
        for part in path.split("."):
            current = current.get(part) if isinstance(current, Mapping) else None
        values.append(current)
    return values


def keyset_filter(sort: Sequence[SortKey], values: Sequence[Any]) -> dict[str, Any]:
    """The filter selecting documents strictly after ``values`` in ``sort`` order.

    An ``$or`` of prefixes: key 1 after its value; key 1 equal and key 2 after;
    and so on. Null and missing sort lowest (and equal): ascending, what comes
    after null is any non-null value; descending, what comes after ``v`` is
    ``< v`` or null/missing, and nothing comes after null. Combine it with the
    request's filter under ``$and`` and sort with the same ``sort``.
    """
    if len(values) != len(sort):
        raise ValueError("one value per sort key is required")
    alternatives: list[dict[str, Any]] = []
    equal: dict[str, Any] = {}
    for (path, direction), value in zip(sort, values, strict=True):
        if direction == 1:
            alternatives.append({**equal, path: {"$ne": None} if value is None else {"$gt": value}})
        elif value is not None:
            alternatives.append({**equal, path: {"$lt": value}})
            alternatives.append({**equal, path: None})
        equal[path] = value  # {path: None} matches null and missing alike, as the sort treats them
    if not alternatives:
        return {"_id": {"$in": []}}  # nothing comes after: the position was the very last
    return alternatives[0] if len(alternatives) == 1 else {"$or": alternatives}


_CODEC: CodecOptions[dict[str, Any]] = CodecOptions(uuid_representation=UuidRepresentation.STANDARD, tz_aware=False)
_MAC_SIZE = 16
_MAC_CONTEXT = b"restengine.cursor.v2\x00"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,4096}")
# What a sort value may be: a plain BSON scalar. Never a document or an array (either could be, or hold,
# an operator such as {"$regex": ...} once the value is put into the keyset filter), nor a regex or code.
_PLAIN = (type(None), bool, int, float, str, bytes, datetime.datetime, ObjectId, uuid.UUID, Decimal128)


def _is_plain(value: Any) -> bool:
    """Whether a decoded cursor value is a plain value a query can only compare with, never an operator."""
    if isinstance(value, DBRef):  # a ReferenceField(dbref=True): exactly $ref, $id (plain) and maybe $db
        return set(value.as_doc()) <= {"$ref", "$id", "$db"} and _is_plain(value.id)
    return isinstance(value, _PLAIN) and not isinstance(value, Code)  # Code is a str


class CursorCodec:
    """Opaque, tamper-evident cursors: ``base64url(hmac[:16] + bson({"s": sort, "v": values}))``.

    A cursor is bound to the resource it was issued for: ``resource`` (its URL
    name) is part of what the MAC signs, so a cursor of one resource is refused
    by every other, whatever the sort. Every instance serving a resource must
    share the same ``secret`` (at least 32 bytes; shorter raises
    :class:`~restengine.config.ConfigError`). Values round-trip as BSON
    (ObjectId, datetime as naive UTC at millisecond precision, UUID,
    Decimal128, ...) and must be plain scalars; the filter built from decoded
    values needs a client with ``uuidRepresentation="standard"`` when UUIDs
    sort. A cursor carries a position only, not the filter it was made for.
    """

    def __init__(self, secret: bytes, resource: str) -> None:
        self._secret = check_secret(secret, "the cursor secret")
        self._context = _MAC_CONTEXT + resource.encode("utf-8") + b"\x00"

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, self._context + payload, hashlib.sha256).digest()[:_MAC_SIZE]

    def encode(self, sort: Sequence[SortKey], values: Sequence[Any]) -> str:
        """The token for the position ``values`` in ``sort`` (raises ``bson.errors.InvalidDocument``)."""
        payload = bson.encode({"s": [[k, d] for k, d in sort], "v": list(values)}, codec_options=_CODEC)
        return base64.urlsafe_b64encode(self._mac(payload) + payload).rstrip(b"=").decode("ascii")

    def decode(self, token: str, sort: Sequence[SortKey]) -> list[Any]:
        """The values in ``token``: plain values, one per key of ``sort``.

        Raises :class:`InvalidParameter` ("cursor") unless the token is ours,
        for this resource and for ``sort``, and every value is a plain scalar
        (no document, array, regex or code: nothing that could act as an operator).
        """
        invalid = InvalidParameter("cursor", "invalid or tampered cursor")
        if not _TOKEN.fullmatch(token):
            raise invalid
        try:
            data = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise invalid from None
        if base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii") != token or len(data) <= _MAC_SIZE:
            raise invalid  # not the canonical encoding: some character was altered
        mac, payload = data[:_MAC_SIZE], data[_MAC_SIZE:]
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise invalid
        try:
            document = bson.decode(payload, codec_options=_CODEC)
            stored = [(str(k), int(d)) for k, d in document["s"]]
            values = list(document["v"])
        except (BSONError, KeyError, TypeError, ValueError):
            raise invalid from None
        if stored != [(k, d) for k, d in sort] or len(values) != len(stored):
            raise InvalidParameter("cursor", "cursor does not match the requested sort")
        if not all(_is_plain(value) for value in values):
            raise invalid
        return values


def next_url(base_url: str, args: Iterable[tuple[str, str]], cursor: str) -> str:
    """The absolute URL of the next page.

    ``base_url`` is the page's URL without query (Flask's ``request.base_url``);
    ``args`` the request's query pairs in order (``request.args.items(multi=True)``).
    Any ``cursor`` is dropped and the new one appended; everything is percent-encoded.
    """
    pairs = [(k, v) for k, v in args if k != "cursor"] + [("cursor", cursor)]
    query = urlencode(pairs, quote_via=quote, safe="")
    scheme, netloc, path, _, _ = urlsplit(base_url)
    return urlunsplit((scheme, netloc, path, query, ""))


def link_header(next_url: str) -> str:
    """The ``Link`` header value (RFC 8288) pointing at the next page."""
    return f'<{next_url}>; rel="next"'
