from __future__ import annotations

from collections.abc import Iterator

import pytest
from mongoengine import NotUniqueError

import restengine.db
from restengine.config import load_settings
from restengine.demo.bookstore import Author, Book
from restengine.documents import load_documents
from restengine.ops.indexes import create_indexes, format_report
from restengine.ops.seed import seed_demo

BOOK_INDEXES = {"isbn_1", "author_1", "tags_1__id_1", "published_-1", "price_1", "author_1_published_-1"}


@pytest.fixture(autouse=True)
def connection(mongodb_uri: str) -> Iterator[None]:
    restengine.db.register(load_settings({"MONGODB_URI": mongodb_uri}), timeout_ms=60_000)
    yield
    restengine.db.close_all()


def _index_names(collection: str) -> set[str]:
    return set(restengine.db.get_database()[collection].index_information())


def test_creates_the_declared_indexes_once() -> None:
    documents = load_documents(["restengine.demo.bookstore"])
    first = create_indexes(documents)
    assert [(r.collection, set(r.created), r.existing) for r in first] == [
        ("author", {"name_1"}, ()),
        ("books", BOOK_INDEXES, ()),
    ]
    assert _index_names("books") == BOOK_INDEXES | {"_id_"}
    assert _index_names("author") == {"name_1", "_id_"}
    assert restengine.db.get_database()["books"].index_information()["isbn_1"]["unique"] is True

    second = create_indexes(documents)
    assert [r.created for r in second] == [(), ()]
    assert set(second[1].existing) == BOOK_INDEXES
    assert format_report(second) == "author: nothing to create (1 existing)\nbooks: nothing to create (6 existing)"


def test_seeds_ten_thousand_books_once() -> None:
    create_indexes(load_documents(["restengine.demo.bookstore"]))
    assert seed_demo(books=10_000, progress=False) == 10_000

    books, authors = Book._get_collection(), Author._get_collection()
    assert books.count_documents({}) == 10_000
    assert authors.count_documents({}) == 500
    assert set(books.distinct("author")) <= set(authors.distinct("_id"))
    assert len(books.distinct("isbn")) == 10_000
    assert seed_demo(books=10_000, progress=False) == 0
    assert books.count_documents({}) == 10_000


def test_the_server_enforces_the_unique_isbn() -> None:
    create_indexes([Author, Book])
    author = Author(name="Ada Abbott").save()
    Book(title="First", isbn="9780000000002", author=author).save()
    with pytest.raises(NotUniqueError):
        Book(title="Second", isbn="9780000000002", author=author).save()
    assert Book.objects(isbn="9780000000002").count() == 1
