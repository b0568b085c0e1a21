from __future__ import annotations

from collections.abc import Iterator

import mongoengine
import mongomock
import pytest

from restengine.demo.bookstore import Author, Book
from restengine.ops.indexes import IndexReport, create_indexes, format_report
from tests import legacy_models_for_discovery as legacy

BOOK_INDEXES = ("isbn_1", "author_1", "tags_1__id_1", "published_-1", "price_1", "author_1_published_-1")


@pytest.fixture(autouse=True)
def mock_db() -> Iterator[None]:
    mongoengine.connect(
        "x",
        host="mongodb://localhost",
        mongo_client_class=mongomock.MongoClient,
        alias="default",
        uuidRepresentation="standard",
    )
    yield
    mongoengine.disconnect("default")


def test_creates_declared_indexes_then_finds_them_existing() -> None:
    first = create_indexes([Author, Book])
    assert [(r.document, r.collection) for r in first] == [("Author", "author"), ("Book", "books")]
    assert first[0].created == ("name_1",) and first[0].existing == ()
    assert sorted(first[1].created) == sorted(BOOK_INDEXES) and first[1].existing == ()
    assert Book._get_collection().index_information()["isbn_1"]["unique"] is True

    second = create_indexes([Author, Book])
    assert [r.created for r in second] == [(), ()]
    assert sorted(second[1].existing) == sorted(BOOK_INDEXES)
    assert format_report(second) == "author: nothing to create (1 existing)\nbooks: nothing to create (6 existing)"


def test_reports_only_what_is_new() -> None:
    Book._get_db()["books"].create_index("price", name="price_1")
    (report,) = create_indexes([Book])
    assert report.existing == ("price_1",)
    assert "price_1" not in report.created and len(report.created) == len(BOOK_INDEXES) - 1


def test_subclasses_sharing_a_collection_are_handled_once() -> None:
    reports = create_indexes([legacy.Shape, legacy.Circle, legacy.Circle])
    assert len(reports) == 1
    (report,) = reports
    assert (report.document, report.collection) == ("Shape, Circle", "shapes")
    # with allow_inheritance MongoEngine puts _cls first in each index
    assert set(report.created) == {"_cls_1_name_1", "_cls_1_radius_1"}
    assert create_indexes([legacy.Circle, legacy.Shape])[0].created == ()


def test_format_report_lines() -> None:
    reports = [
        IndexReport("Book", "books", ("isbn_1", "author_1"), ("a_1", "b_1", "c_1")),
        IndexReport("Author", "author", (), ("name_1",)),
    ]
    assert format_report(reports) == (
        "books: created isbn_1, author_1 (3 existing)\nauthor: nothing to create (1 existing)"
    )
    assert format_report([]) == ""


def test_report_is_frozen() -> None:
    report = IndexReport("Book", "books", (), ())
    with pytest.raises(AttributeError):
        report.collection = "other"  # type: ignore[misc]
