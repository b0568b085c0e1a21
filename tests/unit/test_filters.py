# mypy: disallow-subclassing-any=False
"""Query-string filters -> raw MongoDB filters, without a database."""

from __future__ import annotations

import datetime as dt
import enum
import re
import uuid
from typing import Any

import pytest
from bson import DBRef, Decimal128, ObjectId
from mongoengine import Document, EmbeddedDocument
from mongoengine import fields as mf

from restengine.api.filters import MAX_FILTERS, allowed_operators, coerce, parse_filters
from restengine.api.options import ALL_OPERATORS, COMPARISON, LIST, STRING
from restengine.errors import InvalidParameter

OID = "5f1d7a0e9b1e8a3c4d5e6f70"
UID = "12345678-1234-5678-1234-567812345678"
RESERVED = ("sort", "limit", "cursor", "fields", "expand", "count")


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Priority(enum.Enum):
    LOW = 1
    HIGH = 2


class FltAddress(EmbeddedDocument):
    city = mf.StringField(db_field="c")
    zip = mf.StringField()
    size = mf.IntField()  # named like an operator


class FltLine(EmbeddedDocument):
    sku = mf.StringField(db_field="s")
    qty = mf.IntField()


class FltCustomer(Document):
    meta = {"collection": "flt_customers"}
    name = mf.StringField()


class FltCode(Document):
    meta = {"collection": "flt_codes"}
    code = mf.StringField(primary_key=True)


class FltOrder(Document):
    meta = {"collection": "flt_orders"}
    title = mf.StringField(db_field="t")
    email = mf.EmailField()
    site = mf.URLField()
    quantity = mf.IntField(db_field="qty")
    big = mf.LongField()
    weight = mf.FloatField()
    price = mf.DecimalField(precision=2)
    price_text = mf.DecimalField(force_string=True)
    exact = mf.Decimal128Field()
    paid = mf.BooleanField()
    created = mf.DateTimeField()
    day = mf.DateField()
    token = mf.UUIDField(binary=True)
    token_text = mf.UUIDField(binary=False)
    color = mf.EnumField(Color)
    priority = mf.EnumField(Priority)
    other_id = mf.ObjectIdField()
    customer = mf.ReferenceField(FltCustomer, db_field="cust")
    customer_ref = mf.ReferenceField(FltCustomer, dbref=True)
    code = mf.ReferenceField(FltCode)
    shipping = mf.EmbeddedDocumentField(FltAddress, db_field="ship")
    lines = mf.EmbeddedDocumentListField(FltLine, db_field="ln")
    tags = mf.ListField(mf.StringField())
    scores = mf.ListField(mf.IntField())
    matrix = mf.ListField(mf.DictField())
    loose = mf.ListField()
    extra = mf.DictField()
    blob = mf.BinaryField()
    anything = mf.GenericReferenceField()
    location = mf.PointField()
    number = mf.SequenceField()
    secret = mf.StringField()


def field(name: str) -> Any:
    return FltOrder._fields[name]


def parse(*args: tuple[str, str], filterable: Any = None, hidden: tuple[str, ...] = ()) -> dict[str, Any]:
    return parse_filters(FltOrder, args, filterable=filterable, hidden=hidden, reserved=RESERVED)


def refused(*args: tuple[str, str], filterable: Any = None, hidden: tuple[str, ...] = ()) -> InvalidParameter:
    with pytest.raises(InvalidParameter) as info:
        parse(*args, filterable=filterable, hidden=hidden)
    return info.value


# --- coerce -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("title", "a.b*", "a.b*"),
        ("email", "x@example.com", "x@example.com"),
        ("site", "not even a url", "not even a url"),
        ("quantity", "-12", -12),
        ("quantity", "+7", 7),
        ("big", "9223372036854775807", 2**63 - 1),
        ("number", "3", 3),
        ("weight", "1.5", 1.5),
        ("weight", "2", 2.0),
        ("weight", "1e3", 1000.0),
        ("price", "1.234", 1.23),
        ("price_text", "1.5", "1.50"),  # as stored: precision 2
        ("exact", "1.10", Decimal128("1.10")),
        ("paid", "TRUE", True),
        ("paid", "0", False),
        ("created", "2024-01-31T12:30:00", dt.datetime(2024, 1, 31, 12, 30)),
        ("created", "2024-01-31T12:30:00Z", dt.datetime(2024, 1, 31, 12, 30)),
        ("created", "2024-01-31t12:30:00z", dt.datetime(2024, 1, 31, 12, 30)),  # RFC 3339 allows lowercase
        ("created", "2024-01-31T14:30:00+02:00", dt.datetime(2024, 1, 31, 12, 30)),
        ("created", "2024-01-31", dt.datetime(2024, 1, 31)),
        ("day", "2024-01-31T23:59:00", dt.datetime(2024, 1, 31)),
        ("token", UID, uuid.UUID(UID)),
        ("token_text", UID.replace("-", "").upper(), UID),
        ("color", "green", "green"),
        ("priority", "2", 2),
        ("other_id", OID, ObjectId(OID)),
        ("id", OID, ObjectId(OID)),
        ("customer", OID, ObjectId(OID)),
        ("customer_ref", OID, DBRef("flt_customers", ObjectId(OID))),
        ("code", "ABC", "ABC"),
        ("tags", "red", "red"),
        ("scores", "10", 10),
    ],
)
def test_coerces_to_the_stored_value(name: str, text: str, expected: Any) -> None:
    value = coerce(field(name), text, "p")
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("quantity", "1.5", "integer"),
        ("quantity", "true", "integer"),
        ("quantity", " 1", "integer"),
        ("quantity", "١٢", "integer"),
        ("big", str(2**63), "between"),
        ("weight", "nan", "number"),
        ("weight", "inf", "number"),
        ("weight", "1e999", "out of range"),
        ("price", "abc", "number"),
        ("paid", "yes", "true, false"),
        ("created", "31/01/2024", "ISO 8601"),
        ("created", "2024-02-30", "ISO 8601"),
        ("token", "not-a-uuid", "UUID"),
        ("other_id", "123", "ObjectId"),
        ("customer", "zzzzzzzzzzzzzzzzzzzzzzzz", "ObjectId"),
        ("color", "blue", "expected one of: red, green"),
        ("priority", "LOW", "expected one of: 1, 2"),
        ("title", "x" * 201, "longer than 200"),
        ("title", "a\x00b", "NUL"),
        ("extra", "x", "field cannot be filtered by value"),
        ("blob", "x", "field cannot be filtered by value"),
        ("anything", "x", "field cannot be filtered by value"),
        ("shipping", "x", "field cannot be filtered by value"),
        ("lines", "x", "field cannot be filtered by value"),
        ("location", "x", "field cannot be filtered by value"),
        ("matrix", "x", "field cannot be filtered by value"),
        ("loose", "x", "field cannot be filtered by value"),
    ],
)
def test_refuses_values_it_cannot_coerce(name: str, text: str, reason: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        coerce(field(name), text, "the_param")
    assert info.value.param == "the_param"
    assert info.value.status == 400
    assert reason in info.value.errors["the_param"][0]


def test_a_value_of_exactly_200_characters_is_accepted() -> None:
    assert coerce(field("title"), "x" * 200, "p") == "x" * 200


# --- allowed_operators --------------------------------------------------------------------------


def test_operators_fit_the_field_type() -> None:
    text_ops = STRING - COMPARISON
    assert allowed_operators(field("title")) == STRING
    assert allowed_operators(field("email")) == STRING
    for name in ("quantity", "weight", "price", "paid", "created", "token", "color", "other_id", "customer", "id"):
        assert allowed_operators(field(name)) == COMPARISON, name
    assert allowed_operators(field("tags")) == LIST | text_ops
    assert allowed_operators(field("scores")) == LIST
    for name in ("shipping", "extra", "blob", "anything"):
        assert allowed_operators(field(name)) == {"exists"}, name
    assert allowed_operators(field("lines")) == {"exists", "size"}


# --- parse_filters: what it builds --------------------------------------------------------------


def test_equality_is_keyed_by_db_field_and_reserved_names_are_skipped() -> None:
    query = parse(("title", "Hat"), ("quantity", "3"), ("sort", "-title"), ("limit", "5"), ("cursor", "x"))
    assert query == {"t": "Hat", "qty": 3}


def test_id_names_the_primary_key() -> None:
    assert parse(("id", OID)) == {"_id": ObjectId(OID)}
    assert parse(("id__in", f"{OID},{OID}")) == {"_id": {"$in": [ObjectId(OID), ObjectId(OID)]}}


def test_comparison_operators_on_one_path_merge() -> None:
    assert parse(("price__gte", "1"), ("price__lt", "5"), ("quantity__ne", "0")) == {
        "price": {"$gte": 1.0, "$lt": 5.0},
        "qty": {"$ne": 0},
    }
    assert parse(("created__gt", "2024-01-01T00:00:00+01:00"), ("created__lte", "2024-02-01")) == {
        "created": {"$gt": dt.datetime(2023, 12, 31, 23), "$lte": dt.datetime(2024, 2, 1)}
    }


def test_equality_and_an_operator_on_one_path_combine_with_and() -> None:
    assert parse(("quantity", "3"), ("quantity__lt", "5"), ("title", "x")) == {
        "t": "x",
        "$and": [{"qty": 3}, {"qty": {"$lt": 5}}],
    }


def test_clashing_string_operators_do_not_overwrite_each_other() -> None:
    assert parse(("title__contains", "a"), ("title__istartswith", "b"), ("title__gt", "c")) == {
        "$and": [
            {"t": {"$regex": "a", "$gt": "c"}},
            {"t": {"$regex": "^b", "$options": "i"}},
        ]
    }


def test_in_nin_all_take_comma_separated_coerced_items() -> None:
    assert parse(("quantity__in", "1,2,3"), ("color__nin", "red")) == {
        "qty": {"$in": [1, 2, 3]},
        "color": {"$nin": ["red"]},
    }
    assert parse(("tags__all", "a,b")) == {"tags": {"$all": ["a", "b"]}}
    assert parse(("scores__in", "1,2")) == {"scores": {"$in": [1, 2]}}
    assert parse(("customer_ref__in", OID)) == {"customer_ref": {"$in": [DBRef("flt_customers", ObjectId(OID))]}}


def test_exists_and_size() -> None:
    assert parse(("secret__exists", "false"), ("shipping__exists", "1")) == {
        "secret": {"$exists": False},
        "ship": {"$exists": True},
    }
    assert parse(("tags__size", "0"), ("lines__size", "2")) == {"tags": {"$size": 0}, "ln": {"$size": 2}}


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        ("contains", {"$regex": r"a\.b\*\(c\)"}),
        ("icontains", {"$regex": r"a\.b\*\(c\)", "$options": "i"}),
        ("startswith", {"$regex": r"^a\.b\*\(c\)"}),
        ("istartswith", {"$regex": r"^a\.b\*\(c\)", "$options": "i"}),
        ("endswith", {"$regex": r"a\.b\*\(c\)$"}),
        ("iendswith", {"$regex": r"a\.b\*\(c\)$", "$options": "i"}),
        ("iexact", {"$regex": r"^a\.b\*\(c\)$", "$options": "i"}),
    ],
)
def test_string_operators_are_escaped_regex_strings(op: str, expected: dict[str, str]) -> None:
    query = parse((f"title__{op}", "a.b*(c)"))
    assert query == {"t": expected}
    pattern = query["t"]["$regex"]
    assert type(pattern) is str  # never re.compile / bson.Regex
    flags = re.IGNORECASE if op.startswith("i") else 0
    assert re.search(pattern, "A.B*(C)" if flags else "a.b*(c)", flags)
    assert not re.search(pattern, "aXbbb(c)", flags)
    assert not re.search(pattern, "abc", flags)


def test_every_regex_metacharacter_is_literal() -> None:
    text = r"^$.|?*+()[]{}\ #-&~"
    pattern = parse(("title__iexact", text))["t"]["$regex"]
    assert re.fullmatch(pattern, text)
    assert not re.fullmatch(pattern, "anything")


def test_string_operators_work_on_lists_of_strings() -> None:
    assert parse(("tags__icontains", "x")) == {"tags": {"$regex": "x", "$options": "i"}}


def test_embedded_paths_use_db_fields() -> None:
    assert parse(("shipping__city", "Oslo")) == {"ship.c": "Oslo"}
    assert parse(("shipping__city__iexact", "oslo"), ("shipping__zip__startswith", "01")) == {
        "ship.c": {"$regex": "^oslo$", "$options": "i"},
        "ship.zip": {"$regex": "^01"},
    }
    assert parse(("lines__sku", "A-1"), ("lines__qty__gte", "2")) == {"ln.s": "A-1", "ln.qty": {"$gte": 2}}


def test_a_field_named_like_an_operator_is_still_reachable() -> None:
    assert parse(("shipping__size", "3")) == {"ship.size": 3}
    assert parse(("shipping__size__gt", "3")) == {"ship.size": {"$gt": 3}}
    assert parse(("tags__size", "3")) == {"tags": {"$size": 3}}


def _operators(value: Any) -> set[str]:
    if isinstance(value, dict):
        return {key for key in value if key.startswith("$")}.union(*map(_operators, value.values()))
    if isinstance(value, list):
        return set().union(*map(_operators, value))
    return set()


def test_the_result_only_holds_operators_this_module_writes() -> None:
    query = parse(("title", '{"$where": "sleep(1000)"}'), ("title__ne", "$where"), ("quantity__in", "1"))
    assert query == {
        "$and": [{"t": '{"$where": "sleep(1000)"}'}, {"t": {"$ne": "$where"}}],
        "qty": {"$in": [1]},
    }
    assert _operators(query) == {"$and", "$ne", "$in"}
    assert refused(("$where", "1")).param == "$where"
    assert refused(("title__$where", "1")).param == "title__$where"
    assert refused(("title__$regex", ".*")).param == "title__$regex"
    assert refused(("title__regex", ".*")).param == "title__regex"
    assert refused(("title__where", "1")).param == "title__where"


def test_filterable_keys_cover_the_paths_below_them() -> None:
    filterable = {"shipping": frozenset({"eq"}), "quantity": frozenset({"gte", "lte"}), "id": ALL_OPERATORS}
    assert parse(("shipping__city", "Oslo"), filterable=filterable) == {"ship.c": "Oslo"}
    assert refused(("shipping__city__ne", "Oslo"), filterable=filterable).param == "shipping__city__ne"
    assert parse(("quantity__gte", "1"), filterable=filterable) == {"qty": {"$gte": 1}}
    assert refused(("quantity", "1"), filterable=filterable).param == "quantity"
    assert refused(("title", "x"), filterable=filterable).param == "title"
    assert parse(("id", OID), filterable=filterable) == {"_id": ObjectId(OID)}
    # A key's operators never widen what fits the field type.
    assert refused(("id__contains", "5f"), filterable=filterable).param == "id__contains"


def test_the_most_specific_filterable_key_decides() -> None:
    filterable = {"shipping": frozenset({"exists"}), "shipping__city": frozenset({"eq", "icontains"})}
    assert parse(("shipping__city__icontains", "os"), filterable=filterable) == {
        "ship.c": {"$regex": "os", "$options": "i"}
    }
    assert refused(("shipping__zip", "1"), filterable=filterable).param == "shipping__zip"
    assert parse(("shipping__exists", "true"), filterable=filterable) == {"ship": {"$exists": True}}


def test_empty_filterable_allows_nothing() -> None:
    assert refused(("title", "x"), filterable={}).param == "title"
    assert parse(("sort", "title"), filterable={}) == {}


def test_hidden_fields_are_unknown() -> None:
    error = refused(("secret", "x"), hidden=("secret",))
    assert error.param == "secret"
    assert error.errors == {"secret": ["unknown field"]}
    assert refused(("shipping__city", "x"), hidden=("shipping",)).param == "shipping__city"
    assert refused(("secret__exists", "true"), hidden=("secret",)).param == "secret__exists"
    # no hint that a hidden field exists, even with a bad operator
    assert refused(("secret__foo", "x"), hidden=("secret",)).errors == {"secret__foo": ["unknown field"]}
    assert refused(("secret__foo", "x")).errors == {"secret__foo": ["unknown operator 'foo'"]}
    assert refused(("id", OID), hidden=("id",)).param == "id"
    assert refused(("shipping__city", "x"), hidden=("shipping__city",)).param == "shipping__city"
    assert parse(("shipping__zip", "1"), hidden=("shipping__city",)) == {"ship.zip": "1"}
    # hidden wins over filterable
    assert refused(("secret", "x"), filterable={"secret": ALL_OPERATORS}, hidden=("secret",)).param == "secret"


# --- parse_filters: refusals name the parameter -------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("nope", "1", "unknown field"),
        ("", "1", "unknown field"),
        ("shipping__nope", "1", "unknown field"),
        ("title__", "1", "unknown field"),
        ("__title", "1", "unknown field"),
        ("_cls", "1", "unknown field"),
        ("customer__name", "x", "unknown operator 'name'"),  # references are not traversed
        ("title__eq", "x", "unknown operator 'eq'"),
        ("title__foo", "x", "unknown operator 'foo'"),
        ("quantity__contains", "1", "operator 'contains' is not allowed"),
        ("title__size", "1", "operator 'size' is not allowed"),
        ("title__all", "a", "operator 'all' is not allowed"),
        ("scores__gt", "1", "operator 'gt' is not allowed"),
        ("tags__lt", "a", "operator 'lt' is not allowed"),
        ("shipping", "x", "operator 'eq' is not allowed"),
        ("extra__ne", "x", "operator 'ne' is not allowed"),
        ("quantity", "x", "expected an integer"),
        ("quantity__in", "1,,2", "empty value"),
        ("quantity__in", "", "empty value"),
        ("quantity__in", "1,x", "expected an integer"),
        ("quantity__in", ",".join(["1"] * 101), "at most 100"),
        ("secret__exists", "maybe", "true, false"),
        ("tags__size", "-1", "between 0"),
        ("tags__size", "two", "integer"),
        ("title__icontains", "x" * 201, "longer than 200"),
        ("title__icontains", "a\x00", "NUL"),
        ("created__gte", "yesterday", "ISO 8601"),
    ],
)
def test_refusals_name_the_parameter(name: str, value: str, message: str) -> None:
    error = refused((name, value))
    assert error.param == name
    assert error.status == 400
    assert message in error.errors[name][0]


def test_a_list_of_exactly_100_items_is_accepted() -> None:
    assert len(parse(("quantity__in", ",".join(["1"] * 100)))["qty"]["$in"]) == 100


def test_the_same_parameter_twice_is_refused() -> None:
    error = refused(("title", "a"), ("title", "b"))
    assert error.param == "title"
    assert "more than once" in error.errors["title"][0]
    assert refused(("title__gte", "a"), ("title__gte", "a")).param == "title__gte"


@pytest.mark.parametrize("op", ["in", "nin", "all"])
def test_a_repeated_list_filter_is_the_concatenation(op: str) -> None:
    mongo = {"in": "$in", "nin": "$nin", "all": "$all"}[op]
    name = f"tags__{op}"
    assert parse((name, "a"), (name, "b,c"), (name, "d")) == parse((name, "a,b,c,d"))
    assert parse((name, "a"), ("title", "x"), (name, "b"))["tags"] == {mongo: ["a", "b"]}
    assert refused((name, "a"), (name, "")).param == name, "an empty value is refused, not dropped"
    assert refused(*[(name, "1")] * 101).param == name, "the list limit counts every repeated value"


def test_too_many_filters_are_refused_under_one_name() -> None:
    ops = {"title": STRING, "tags": allowed_operators(field("tags"))}
    args = [(path if op == "eq" else f"{path}__{op}", "1") for path in ops for op in sorted(ops[path])]
    assert len(args) == MAX_FILTERS
    assert parse(*args, *[(name, "1") for name in RESERVED])  # reserved names do not count
    assert refused(*args, ("weight", "2")).param == "filters"


@pytest.mark.parametrize("op", sorted(ALL_OPERATORS - {"eq"}))
def test_every_operator_suffix_is_understood(op: str) -> None:
    value = {"exists": "true", "size": "1"}.get(op, "1")
    path = "tags" if op in {"size", "all"} else "title"
    query = parse((f"{path}__{op}", value))
    assert list(query) == [path.replace("title", "t")]
