from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import mongoengine
import mongomock
import pytest

from restengine.demo.bookstore import Author, Book
from restengine.ops import seed
from restengine.ops.seed import isbn13, seed_demo


def _connect() -> None:
    mongoengine.connect(
        "x",
        host="mongodb://localhost",
        mongo_client_class=mongomock.MongoClient,
        alias="default",
        uuidRepresentation="standard",
    )


@pytest.fixture(autouse=True)
def mock_db() -> Iterator[None]:
    _connect()
    yield
    mongoengine.disconnect("default")


def _content() -> list[tuple[Any, ...]]:
    return [
        (b.isbn, b.title, b.price, b.published, b.tags, b.author.name, [r.rating for r in b.reviews])
        for b in Book.objects.order_by("isbn")
    ]


def test_writes_valid_books_with_existing_authors() -> None:
    assert seed_demo(books=200, progress=False) == 200
    assert Book.objects.count() == 200
    assert Author.objects.count() == 10
    author_ids = set(Author._get_collection().distinct("_id"))
    assert set(Book._get_collection().distinct("author")) <= author_ids
    isbns = Book._get_collection().distinct("isbn")
    assert len(isbns) == 200 and all(re.fullmatch(r"\d{13}", i) for i in isbns)
    for book in Book.objects:
        book.validate()
        assert 0 <= len(book.reviews) <= 3
        assert book.price == book.price.quantize(Decimal("0.01"))
        assert datetime(1950, 1, 1) <= book.published < datetime(2026, 1, 1)
        assert book.published.tzinfo is None
        assert all(tag == tag.lower() and tag in seed.TAGS for tag in book.tags)


def test_second_run_writes_nothing() -> None:
    assert seed_demo(books=30, progress=False) == 30
    assert seed_demo(books=30, progress=False) == 0
    assert (Book.objects.count(), Author.objects.count()) == (30, 1)


def test_is_deterministic() -> None:
    seed_demo(books=120, progress=False)
    first = _content()
    mongoengine.disconnect("default")
    _connect()  # a fresh, empty mock database
    assert Book.objects.count() == 0
    seed_demo(books=120, progress=False)
    assert _content() == first


def test_one_insert_round_trip_per_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seed, "BATCH_SIZE", 40)
    sizes: list[tuple[str, int]] = []
    real = mongomock.collection.Collection.insert_many

    def spy(self: mongomock.collection.Collection, documents: list[Any], *args: Any, **kwargs: Any) -> Any:
        documents = list(documents)
        sizes.append((self.name, len(documents)))
        return real(self, documents, *args, **kwargs)

    monkeypatch.setattr(mongomock.collection.Collection, "insert_many", spy)
    assert seed_demo(books=100, progress=False) == 100
    assert sizes == [("author", 5), ("books", 40), ("books", 40), ("books", 20)]


def test_validates_every_document(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seed, "COUNTRIES", ("germany",))  # fails Author.country's regex
    with pytest.raises(mongoengine.ValidationError):
        seed_demo(books=20, progress=False)
    assert Author.objects.count() == 0


def test_progress_bar_goes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    seed_demo(books=20, progress=True)
    out, err = capsys.readouterr()
    assert out == "" and "20/20" in err and "book" in err


def test_nothing_to_write() -> None:
    assert seed_demo(books=0, progress=False) == 0
    with pytest.raises(ValueError, match="books"):
        seed_demo(books=-1, progress=False)


def test_isbn13_check_digit() -> None:
    assert isbn13(0) == "9780000000002"
    assert isbn13(30640615) == "9780306406157"  # ISBN 978-0-306-40615-7
    assert len({isbn13(n) for n in range(1000)}) == 1000
