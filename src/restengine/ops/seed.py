"""Fill the demo bookstore with deterministic sample data on first run."""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from bson import ObjectId
from tqdm import tqdm

from restengine.demo.bookstore import CURRENCIES, Author, Book, Review

BATCH_SIZE = 1000
BOOKS_PER_AUTHOR = 20
SEED = 42

TAGS = (
    "fiction",
    "fantasy",
    "science-fiction",
    "mystery",
    "thriller",
    "romance",
    "horror",
    "history",
    "biography",
    "poetry",
    "drama",
    "travel",
    "cooking",
    "art",
    "music",
    "philosophy",
    "psychology",
    "science",
    "mathematics",
    "economics",
    "politics",
    "nature",
    "children",
    "young-adult",
    "classic",
    "humor",
    "adventure",
    "war",
    "religion",
    "technology",
)
FIRST_NAMES = (
    "Ada",
    "Bruno",
    "Chiara",
    "Dmitri",
    "Elena",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Kemi",
    "Lars",
    "Mira",
    "Nikolai",
    "Olga",
    "Pablo",
    "Quinn",
    "Rosa",
    "Sven",
    "Tomoko",
)
LAST_NAMES = (
    "Abbott",
    "Brandt",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Huang",
    "Ivanova",
    "Jansen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Weber",
)
COUNTRIES = ("DE", "FR", "GB", "US", "IT", "ES", "JP", "NG", "SE", "PL", "RU", "BR", "CN", "NL")
ADJECTIVES = (
    "Silent",
    "Broken",
    "Hidden",
    "Last",
    "Golden",
    "Distant",
    "Burning",
    "Frozen",
    "Secret",
    "Endless",
    "Crimson",
    "Quiet",
    "Lost",
    "Wandering",
    "Bright",
)
NOUNS = (
    "River",
    "Garden",
    "Empire",
    "Harbour",
    "Winter",
    "Mirror",
    "Kingdom",
    "Letter",
    "Orchard",
    "Station",
    "Island",
    "Engine",
    "Library",
    "Storm",
    "Lantern",
)
PHRASES = ("A fine read.", "Could not put it down.", "Slow in the middle.", "Not for me.", "Beautifully written.")

FIRST_DAY = datetime(1950, 1, 1)
LAST_DAY = datetime(2025, 12, 31, 23, 59, 59)


def isbn13(number: int) -> str:
    """A valid ISBN-13 (prefix 978) for ``0 <= number < 10**9``; distinct numbers give distinct ISBNs."""
    body = f"978{number:09d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def _moment(rng: random.Random, start: datetime, end: datetime) -> datetime:
    """A naive UTC datetime in [start, end], whole seconds (MongoDB keeps milliseconds)."""
    return start + timedelta(seconds=rng.randint(0, int((end - start).total_seconds())))


def _author(rng: random.Random) -> Author:
    name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
    return Author(
        id=ObjectId(),  # set here so books can reference it before it is written
        name=name,
        born=_moment(rng, datetime(1880, 1, 1), datetime(1995, 12, 31)),
        country=rng.choice(COUNTRIES),
        bio=f"{name} writes about {rng.choice(TAGS)} and {rng.choice(TAGS)}.",
    )


def _title(rng: random.Random) -> str:
    adjective, noun, other = rng.choice(ADJECTIVES), rng.choice(NOUNS), rng.choice(NOUNS)
    return rng.choice((f"The {adjective} {noun}", f"{noun} of the {adjective} {other}", f"{adjective} {noun}s"))


def _review(rng: random.Random, published: datetime) -> Review:
    return Review(
        reviewer=f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)[0]}.",
        rating=rng.randint(1, 5),
        text=rng.choice(PHRASES),
        created=_moment(rng, published, LAST_DAY),
    )


def _book(rng: random.Random, number: int, authors: Sequence[Author]) -> Book:
    published = _moment(rng, FIRST_DAY, LAST_DAY)
    return Book(
        title=_title(rng),
        isbn=isbn13(number),
        author=rng.choice(authors),
        tags=rng.sample(TAGS, rng.randint(1, 4)),
        price=Decimal(rng.randint(199, 9999)).scaleb(-2),
        currency=rng.choice(CURRENCIES),
        published=published,
        pages=rng.randint(48, 1200),
        in_stock=rng.random() < 0.85,
        reviews=[_review(rng, published) for _ in range(rng.randint(0, 3))],
    )


def _batches(count: int) -> Iterator[range]:
    for start in range(0, count, BATCH_SIZE):
        yield range(start, min(start + BATCH_SIZE, count))


def seed_demo(*, books: int = 10_000, progress: bool = True) -> int:
    """Write ``books`` demo books (and about one author per 20 books); return how many.

    Runs only on first use: when the books collection already holds a document
    it writes nothing and returns 0. The content is the same on every run with
    the same ``books`` (titles, ISBNs, prices, dates...); ObjectIds differ.
    Every document is validated (``clean()`` included) before it is written,
    in batches of 1000, one insert round trip each; a progress bar goes to
    stderr unless ``progress`` is false. Needs a registered default
    connection; raises ``ValueError`` when ``books`` is negative,
    ``mongoengine.ValidationError`` on a bad document, ``NotUniqueError`` if an
    ISBN is taken, and PyMongo errors when the database fails. An interrupted
    run leaves authors and some books behind; it is not resumed.
    """
    if books < 0:
        raise ValueError(f"books: must be >= 0, got {books}")
    if books == 0 or Book._get_collection().find_one({}, {"_id": 1}) is not None:
        return 0
    rng = random.Random(SEED)
    authors = [_author(rng) for _ in range(max(1, books // BOOKS_PER_AUTHOR))]
    for batch in _batches(len(authors)):
        chunk = authors[batch.start : batch.stop]
        for author in chunk:
            author.validate()
        Author.objects.insert(chunk, load_bulk=False)

    written = 0
    with tqdm(total=books, unit="book", desc="seeding books", disable=not progress, file=sys.stderr) as bar:
        for batch in _batches(books):
            chunk = [_book(rng, number, authors) for number in batch]
            for book in chunk:
                book.validate()
            Book.objects.insert(chunk, load_bulk=False)
            written += len(chunk)
            bar.update(len(chunk))
    return written
