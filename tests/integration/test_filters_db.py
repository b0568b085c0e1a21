# mypy: disallow-subclassing-any=False
"""parse_filters output run by the real database server: each filter finds exactly the expected documents."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import mongoengine
import pytest
from mongoengine import Document, EmbeddedDocument
from mongoengine import fields as mf

from restengine.api.filters import parse_filters


class FltDbMaker(Document):
    meta = {"collection": "fltdb_makers"}
    name = mf.StringField()


class FltDbAddress(EmbeddedDocument):
    city = mf.StringField(db_field="c")


class FltDbProduct(Document):
    meta = {"collection": "fltdb_products"}
    key = mf.StringField(db_field="k", required=True)
    name = mf.StringField(db_field="n")
    price = mf.FloatField(db_field="p")
    stock = mf.IntField()
    released = mf.DateTimeField()
    tags = mf.ListField(mf.StringField())
    note = mf.StringField()
    shipping = mf.EmbeddedDocumentField(FltDbAddress, db_field="ship")
    maker = mf.ReferenceField(FltDbMaker)
    maker_ref = mf.ReferenceField(FltDbMaker, dbref=True)


@pytest.fixture(autouse=True)
def connection(mongodb_uri: str) -> Iterator[None]:
    mongoengine.connect(host=mongodb_uri, uuidRepresentation="standard", alias="default")
    yield
    mongoengine.disconnect()


@pytest.fixture
def makers() -> tuple[FltDbMaker, FltDbMaker]:
    return FltDbMaker(name="Acme").save(), FltDbMaker(name="Globex").save()


@pytest.fixture
def products(makers: tuple[FltDbMaker, FltDbMaker]) -> None:
    acme, globex = makers
    FltDbProduct._get_collection().create_index("n")  # string operators must work on an indexed field
    rows: list[dict[str, Any]] = [
        dict(key="a", name="a.b*c (x)", price=1.5, stock=0, released=dt.datetime(2024, 1, 10), tags=["red", "big"]),
        dict(key="b", name="A.B*C (Y) deluxe", price=5.0, stock=3, released=dt.datetime(2024, 2, 1), tags=["red"]),
        dict(key="c", name="abc", price=9.99, stock=10, released=dt.datetime(2024, 3, 5, 12), tags=[], note="n"),
        dict(key="d", name="a+b [1]", price=20.0, stock=7, released=dt.datetime(2023, 12, 31), tags=["blue"]),
        dict(key="e", name="Zed", price=5.0, stock=1, tags=["red", "blue", "big"], note=""),
    ]
    shipped = {"a": ("Oslo", acme), "b": ("Bergen", globex), "c": ("oslo", acme), "e": ("Oslo", globex)}
    for row in rows:
        city, maker = shipped.get(row["key"], (None, None))
        shipping = FltDbAddress(city=city) if city else None
        FltDbProduct(**row, maker=maker, maker_ref=maker, shipping=shipping).save()
    assert "n_1" in FltDbProduct._get_collection().index_information()


def keys(*args: tuple[str, str]) -> list[str]:
    query = parse_filters(FltDbProduct, args, filterable=None, reserved=("sort", "limit"))
    return sorted(row["k"] for row in FltDbProduct._get_collection().find(query, {"k": 1}))


pytestmark = pytest.mark.usefixtures("products")


def test_equality_on_db_field_renamed_fields() -> None:
    assert keys(("name", "abc")) == ["c"]
    assert keys(("price", "5")) == ["b", "e"]
    assert keys(("name", "a.b*c (x)"), ("sort", "name")) == ["a"]


def test_number_ranges() -> None:
    assert keys(("price__gt", "5")) == ["c", "d"]
    assert keys(("price__gte", "5"), ("price__lte", "9.99")) == ["b", "c", "e"]
    assert keys(("stock__lt", "3"), ("stock__ne", "0")) == ["e"]


def test_date_ranges() -> None:
    assert keys(("released__gt", "2024-01-10")) == ["b", "c"]
    assert keys(("released__lte", "2024-01-10T00:00:00Z")) == ["a", "d"]
    assert keys(("released__gte", "2024-03-05T13:00:00+01:00")) == ["c"]
    assert keys(("released__lt", "2024-03-05T12:00:00+01:00")) == ["a", "b", "d"]


def test_in_and_nin() -> None:
    assert keys(("stock__in", "0,7,99")) == ["a", "d"]
    assert keys(("price__nin", "5,1.5")) == ["c", "d"]
    assert keys(("name__in", "Zed,abc")) == ["c", "e"]


def test_exists() -> None:
    assert keys(("note__exists", "true")) == ["c", "e"]
    assert keys(("note__exists", "false")) == ["a", "b", "d"]
    assert keys(("shipping__exists", "0")) == ["d"]


def test_string_operators_on_an_indexed_field_match_literally() -> None:
    assert keys(("name__icontains", "B*C (")) == ["a", "b"]
    assert keys(("name__contains", "b*c")) == ["a"]
    assert keys(("name__startswith", "a.b*")) == ["a"]
    assert keys(("name__istartswith", "a.b*")) == ["a", "b"]
    assert keys(("name__iendswith", "(y) DELUXE")) == ["b"]
    assert keys(("name__iexact", "A.B*C (X)")) == ["a"]
    assert keys(("name__iexact", "a.b*c")) == []
    assert keys(("name__contains", "+b [1")) == ["d"]
    assert keys(("name__icontains", ".")) == ["a", "b"]


def test_list_size_all_and_membership() -> None:
    assert keys(("tags__size", "0")) == ["c"]
    assert keys(("tags__size", "2")) == ["a"]
    assert keys(("tags__all", "red,big")) == ["a", "e"]
    assert keys(("tags", "blue")) == ["d", "e"]
    assert keys(("tags__in", "blue,big")) == ["a", "d", "e"]
    assert keys(("tags__nin", "red")) == ["c", "d"]
    assert keys(("tags__istartswith", "BL")) == ["d", "e"]


def test_embedded_path() -> None:
    assert keys(("shipping__city", "Oslo")) == ["a", "e"]
    assert keys(("shipping__city__iexact", "oslo")) == ["a", "c", "e"]
    assert keys(("shipping__city__ne", "Oslo")) == ["b", "c", "d"]


def test_reference_by_id(makers: tuple[FltDbMaker, FltDbMaker]) -> None:
    acme, globex = makers
    assert keys(("maker", str(acme.pk))) == ["a", "c"]
    assert keys(("maker__in", f"{globex.pk},{acme.pk}")) == ["a", "b", "c", "e"]
    assert keys(("maker__exists", "false")) == ["d"]


def test_reference_stored_as_dbref_by_id(makers: tuple[FltDbMaker, FltDbMaker]) -> None:
    globex = makers[1]
    assert keys(("maker_ref", str(globex.pk))) == ["b", "e"]
    assert keys(("maker_ref__ne", str(globex.pk))) == ["a", "c", "d"]


def test_id_and_combined_filters() -> None:
    collection = FltDbProduct._get_collection()
    pk = str(collection.find_one({"k": "c"})["_id"])
    assert keys(("id", pk)) == ["c"]
    assert keys(("price", "5"), ("price__lt", "10"), ("name__icontains", "z")) == ["e"]
    assert keys(("name__contains", "b"), ("name__startswith", "a")) == ["a", "c", "d"]
