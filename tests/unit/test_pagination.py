from __future__ import annotations

import base64
import datetime as dt
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from bson import Binary, DBRef, Decimal128, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.code import Code
from mongoengine import (
    DateTimeField,
    DictField,
    Document,
    DynamicField,
    EmbeddedDocument,
    EmbeddedDocumentField,
    GenericReferenceField,
    IntField,
    ListField,
    ReferenceField,
    StringField,
    UUIDField,
)

from restengine.api.pagination import (
    CursorCodec,
    keyset_filter,
    link_header,
    next_url,
    parse_limit,
    parse_sort,
    sort_values,
)
from restengine.config import ConfigError
from restengine.errors import InvalidParameter
from tests.keys import OTHER_SECRET, TEST_SECRET

SECRET = TEST_SECRET.encode()


class PgAddress(EmbeddedDocument):
    city = StringField(db_field="c")
    zip = StringField()


class PgItem(Document):
    title = StringField(db_field="t")
    price = IntField()
    created = DateTimeField()
    secret = StringField()
    ship = EmbeddedDocumentField(PgAddress)
    stops = ListField(EmbeddedDocumentField(PgAddress))
    tags = ListField(StringField())
    extra = DictField()
    anything = DynamicField()
    owner = GenericReferenceField()
    parent = ReferenceField("PgItem")


class PgKeyed(Document):
    code = UUIDField(primary_key=True, binary=True)
    name = StringField()


def refused(param: str, call: Any, *args: Any, **kwargs: Any) -> InvalidParameter:
    with pytest.raises(InvalidParameter) as info:
        call(*args, **kwargs)
    assert info.value.param == param
    assert info.value.status == 400
    return info.value


# --- parse_sort ------------------------------------------------------------------------------


def test_default_sort_is_id() -> None:
    assert parse_sort(PgItem, None, sortable=None) == [("_id", 1)]


def test_sort_uses_db_paths_and_appends_id_tiebreak() -> None:
    assert parse_sort(PgItem, "-price,title", sortable=None) == [("price", -1), ("t", 1), ("_id", 1)]
    assert parse_sort(PgItem, "ship__city, created", sortable=None) == [("ship.c", 1), ("created", 1), ("_id", 1)]
    assert parse_sort(PgItem, "parent", sortable=None) == [("parent", 1), ("_id", 1)]


def test_sort_on_primary_key_keeps_its_direction_and_adds_no_tiebreak() -> None:
    assert parse_sort(PgItem, "-id", sortable=None) == [("_id", -1)]
    assert parse_sort(PgItem, "price,-id", sortable=None) == [("price", 1), ("_id", -1)]
    assert parse_sort(PgKeyed, "-code", sortable=None) == [("_id", -1)]
    assert parse_sort(PgKeyed, "name,-id", sortable=["name", "id"]) == [("name", 1), ("_id", -1)]
    assert parse_sort(PgKeyed, "-id", sortable=["code"]) == [("_id", -1)]


@pytest.mark.parametrize(
    "text",
    [
        "",
        ",",
        "price,",
        "-",
        "price,,title",
        "nope",
        "_id",
        "_cls",
        "ship__nope",
        "price__x",
        "ship__",
        "price,-price",
        "id,-id",
        "tags",
        "stops",
        "stops__city",
        "ship",
        "extra",
        "extra__k",
        "anything",
        "owner",
        "secret",
        "title,price,created,ship__city,ship__zip,id",
    ],
)
def test_sort_refusals_name_the_sort_parameter(text: str) -> None:
    refused("sort", parse_sort, PgItem, text, sortable=None, hidden=["secret"])


def test_sort_respects_sortable_and_hidden() -> None:
    assert parse_sort(PgItem, "-price", sortable=["price"]) == [("price", -1), ("_id", 1)]
    refused("sort", parse_sort, PgItem, "title", sortable=["price"])
    refused("sort", parse_sort, PgItem, "id", sortable=["price"])
    refused("sort", parse_sort, PgItem, "ship__city", sortable=None, hidden=["ship"])
    refused("sort", parse_sort, PgItem, "ship__city", sortable=["ship__city"], hidden=["ship__city"])
    # explicitly sortable documents are allowed (object comparison is consistent); lists never are
    assert parse_sort(PgItem, "ship", sortable=["ship"]) == [("ship", 1), ("_id", 1)]
    refused("sort", parse_sort, PgItem, "tags", sortable=["tags"])
    refused("sort", parse_sort, PgItem, "stops__city", sortable=["stops__city"])


def test_five_sort_keys_are_allowed() -> None:
    keys = parse_sort(PgItem, "title,price,created,ship__city,ship__zip", sortable=None)
    assert len(keys) == 6 and keys[-1] == ("_id", 1)


# --- parse_limit -----------------------------------------------------------------------------


def test_limit() -> None:
    assert parse_limit(None, default=25, maximum=100) == 25
    assert parse_limit("1", default=25, maximum=100) == 1
    assert parse_limit("100", default=25, maximum=100) == 100


@pytest.mark.parametrize("text", ["", "0", "-1", "abc", "1.5", " 5", "1_0", "+5", "٣", "9" * 5000])
def test_limit_refusals(text: str) -> None:
    refused("limit", parse_limit, text, default=25, maximum=100)


def test_limit_above_maximum_says_the_maximum() -> None:
    error = refused("limit", parse_limit, "101", default=25, maximum=100)
    assert error.errors == {"limit": ["must be at most 100"]}


# --- sort_values / keyset_filter ---------------------------------------------------------------


def test_sort_values_follow_dotted_paths() -> None:
    oid = ObjectId()
    raw = {"_id": oid, "a": 3, "ship": {"c": "Oslo"}, "n": None, "s": "x"}
    sort = [("a", 1), ("ship.c", -1), ("missing", 1), ("n.x", 1), ("s.x", 1), ("_id", 1)]
    assert sort_values(raw, sort) == [3, "Oslo", None, None, None, oid]


def test_keyset_filter_shapes() -> None:
    assert keyset_filter([("_id", 1)], [7]) == {"_id": {"$gt": 7}}
    assert keyset_filter([("a", 1), ("_id", -1)], [None, 9]) == {
        "$or": [{"a": {"$ne": None}}, {"a": None, "_id": {"$lt": 9}}, {"a": None, "_id": None}]
    }
    assert keyset_filter([("a", -1), ("_id", 1)], [5, 1]) == {
        "$or": [{"a": {"$lt": 5}}, {"a": None}, {"a": 5, "_id": {"$gt": 1}}]
    }
    assert keyset_filter([("a", -1), ("_id", 1)], [None, 1]) == {"a": None, "_id": {"$gt": 1}}
    assert keyset_filter([("a", -1)], [None]) == {"_id": {"$in": []}}
    with pytest.raises(ValueError):
        keyset_filter([("a", 1), ("_id", 1)], [1])


# --- CursorCodec -----------------------------------------------------------------------------

SORT = [("a", 1), ("b.c", -1), ("_id", 1)]


def test_cursor_round_trips_bson_values() -> None:
    codec = CursorCodec(SECRET, "things")
    values: list[Any] = [
        ObjectId(),
        dt.datetime(2024, 2, 29, 13, 45, 7, 123000),
        "naïve ünïcode",
        2**40,
        None,
        uuid.uuid4(),
        Decimal128("12.30"),
    ]
    sort = [(f"k{i}", 1 if i % 2 else -1) for i in range(len(values))]
    token = codec.encode(sort, values)
    assert len(token) < 1024
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    decoded = codec.decode(token, sort)
    assert decoded == values
    assert all(isinstance(d, type(v)) for d, v in zip(decoded, values, strict=True))  # int64 -> Int64(int)


def test_cursor_datetime_is_naive_utc() -> None:
    codec = CursorCodec(SECRET, "things")
    aware = dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert codec.decode(codec.encode([("_id", 1)], [aware]), [("_id", 1)]) == [dt.datetime(2024, 1, 1, 10)]


def _flip(token: str, index: int) -> str:
    data = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    data[index] ^= 0x01
    return base64.urlsafe_b64encode(bytes(data)).rstrip(b"=").decode()


def test_tampered_cursors_are_refused() -> None:
    codec = CursorCodec(SECRET, "things")
    token = codec.encode(SORT, [1, "x", ObjectId()])
    size = len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    for index in (0, 15, 16, 20, size - 1):
        error = refused("cursor", codec.decode, _flip(token, index), SORT)
        assert error.errors == {"cursor": ["invalid or tampered cursor"]}
    refused("cursor", CursorCodec(OTHER_SECRET.encode(), "things").decode, token, SORT)
    last = token[-1]
    for bad in ("", "!!!!", token + "=", token[:-1] + ("A" if last != "A" else "B"), token[:-1], "A" * 5000, "AAAAA"):
        refused("cursor", codec.decode, bad, SORT)


def test_cursor_for_another_sort_is_refused() -> None:
    codec = CursorCodec(SECRET, "things")
    token = codec.encode(SORT, [1, "x", ObjectId()])
    error = refused("cursor", codec.decode, token, [("a", -1), ("b.c", -1), ("_id", 1)])
    assert error.errors == {"cursor": ["cursor does not match the requested sort"]}
    refused("cursor", codec.decode, token, [("_id", 1)])


def test_empty_secret_is_a_configuration_error() -> None:
    with pytest.raises(ValueError):
        CursorCodec(b"", "things")


def test_a_short_secret_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        CursorCodec(b"x" * 31, "things")
    CursorCodec(b"x" * 32, "things")


def test_a_cursor_is_bound_to_its_resource() -> None:
    token = CursorCodec(SECRET, "books").encode(SORT, [1, "x", ObjectId()])
    error = refused("cursor", CursorCodec(SECRET, "authors").decode, token, SORT)
    assert error.errors == {"cursor": ["invalid or tampered cursor"]}
    assert CursorCodec(SECRET, "books").decode(token, SORT)[:2] == [1, "x"]


@pytest.mark.parametrize(
    "value",
    [
        {"$regex": "^"},
        {"$gt": ""},
        {"x": 1},
        [1, 2],
        [{"$ne": None}],
        Regex("^", "i"),
        Code("return true"),
        MinKey(),
        MaxKey(),
        Timestamp(0, 0),
        DBRef("c", {"$gt": ""}),
        DBRef("c", 1, extra={"$regex": "^"}),
    ],
    ids=repr,
)
def test_a_validly_signed_cursor_carrying_an_operator_or_container_is_refused(value: Any) -> None:
    """Even signed with the real secret (a leaked or guessed one), a value is never an operator or container."""
    codec = CursorCodec(SECRET, "things")
    token = codec.encode(SORT, [1, value, ObjectId()])
    error = refused("cursor", codec.decode, token, SORT)
    assert error.errors == {"cursor": ["invalid or tampered cursor"]}


def test_plain_values_and_plain_dbrefs_are_accepted() -> None:
    codec = CursorCodec(SECRET, "things")
    values: list[Any] = [True, 1.5, b"\x00\x01", Binary(b"ab", 128), DBRef("authors", ObjectId()), ObjectId()]
    sort = [(f"k{i}", 1) for i in range(len(values))]
    assert codec.decode(codec.encode(sort, values), sort) == values


# --- next_url / link_header ------------------------------------------------------------------


def test_next_url_keeps_other_params_and_replaces_cursor() -> None:
    args = [("price__gte", "10"), ("cursor", "old"), ("title", "a b&c=d/é"), ("tags", "x"), ("tags", "y")]
    url = next_url("http://api.example/books", args, "TOKEN_-1")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path, parts.fragment) == ("http", "api.example", "/books", "")
    assert parse_qsl(parts.query) == [
        ("price__gte", "10"),
        ("title", "a b&c=d/é"),
        ("tags", "x"),
        ("tags", "y"),
        ("cursor", "TOKEN_-1"),
    ]
    assert " " not in url and "é" not in url
    assert link_header(url) == f'<{url}>; rel="next"'


def test_next_url_without_params() -> None:
    assert next_url("https://h:8443/api/x", [], "abc") == "https://h:8443/api/x?cursor=abc"
