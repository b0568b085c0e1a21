"""A small bookstore, written as a legacy MongoEngine codebase would write it.

Plain MongoEngine only: RestEngine serves these classes unchanged. References
store plain ObjectIds (``dbref=False``, the default).
"""

from __future__ import annotations

from typing import Any

from mongoengine import (
    DENY,
    BooleanField,
    DateTimeField,
    DecimalField,
    Document,
    EmbeddedDocument,
    EmbeddedDocumentField,
    IntField,
    ListField,
    ReferenceField,
    StringField,
)

CURRENCIES = ("EUR", "USD", "GBP")


class Author(Document):
    """Someone who wrote at least one book."""

    name = StringField(required=True, max_length=120)
    born = DateTimeField()
    country = StringField(max_length=2, regex=r"^[A-Z]{2}$")  # ISO 3166-1 alpha-2
    bio = StringField()

    meta: dict[str, Any] = {"indexes": ["name"]}


class Review(EmbeddedDocument):
    """A reader's rating of a book, kept inside the book."""

    reviewer = StringField(required=True, max_length=80)
    rating = IntField(required=True, min_value=1, max_value=5)
    text = StringField()
    created = DateTimeField()


class Book(Document):
    """A title in the catalogue; an author with books cannot be deleted."""

    title = StringField(required=True, max_length=200)
    isbn = StringField(unique=True, regex=r"^\d{13}$")
    author = ReferenceField(Author, reverse_delete_rule=DENY, required=True)
    tags = ListField(StringField(max_length=32))
    price = DecimalField(min_value=0, precision=2, force_string=False)
    currency = StringField(choices=CURRENCIES)
    published = DateTimeField()
    pages = IntField(min_value=1)
    in_stock = BooleanField(default=True)
    reviews = ListField(EmbeddedDocumentField(Review))

    meta: dict[str, Any] = {
        "collection": "books",
        "indexes": ["author", ("tags", "id"), "-published", "price", ("author", "-published")],
    }

    def clean(self) -> None:
        """Lowercase, trim and de-duplicate tags (dropping blank ones), keeping first-seen order."""
        tags: list[Any] = []
        for tag in self.tags or []:
            if isinstance(tag, str):  # anything else is left for field validation to reject
                tag = tag.strip().lower()
                if not tag or tag in tags:
                    continue
            tags.append(tag)
        self.tags = tags
