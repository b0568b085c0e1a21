"""FastAPI over MongoEngine: plain ``def`` handlers, which FastAPI runs in its threadpool.

MongoEngine is blocking, so the handlers are synchronous functions and FastAPI
dispatches each one to the AnyIO worker-thread pool (40 threads by default);
the event loop only parses HTTP and writes responses. Bodies are encoded with orjson.

Run from the repository root, with ``MONGODB_URI`` set::

    uvicorn bench.peers.fastapi_threadpool:app --workers 2 --loop uvloop --http httptools --port P

URLs: ``GET /api/books/<id>``, ``GET /api/books?tags=T&limit=20[&expand=author][&page=N]``,
``POST /api/books``, ``GET /healthz``.
"""

from __future__ import annotations

import datetime
import decimal
import os
from decimal import Decimal
from typing import Annotated, Any

import mongoengine
import orjson
from bson import ObjectId
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from restengine.demo.bookstore import Author, Book

# Lazy: PyMongo opens no socket until the first query (each uvicorn worker is its own process).
mongoengine.connect(host=os.environ["MONGODB_URI"], uuidRepresentation="pythonLegacy", connect=False)


def _default(value: Any) -> Any:
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    raise TypeError


class OrjsonResponse(JSONResponse):
    """orjson with ObjectId/Decimal support; naive datetimes are UTC and end in ``Z``.

    (FastAPI's own ``ORJSONResponse`` is deprecated in this FastAPI version, and cannot take a ``default``.)
    """

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=_default, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z)


app = FastAPI(title="bookstore (FastAPI + MongoEngine, threadpool)", default_response_class=OrjsonResponse)


class BookIn(BaseModel):
    """The request's shape; the Book Document does the real validation."""

    title: str
    isbn: str | None = None
    author: str
    price: Decimal | None = None
    tags: list[str] = []
    currency: str | None = None
    published: datetime.datetime | None = None
    pages: int | None = None
    in_stock: bool = True


def to_dict(doc: mongoengine.Document) -> dict[str, Any]:
    data = doc.to_mongo().to_dict()
    data["id"] = data.pop("_id")
    return data


def book_to_dict(book: Book, expand_author: bool = False) -> dict[str, Any]:
    data = to_dict(book)
    if expand_author and isinstance(book.author, Author):
        data["author"] = to_dict(book.author)
    return data


@app.get("/healthz")
async def healthz() -> OrjsonResponse:  # no I/O: stays on the event loop
    return OrjsonResponse({"status": "ok"})


@app.get("/api/books/{book_id}")
def get_book(book_id: str) -> OrjsonResponse:
    try:
        book = Book.objects.get(id=book_id)
    except (Book.DoesNotExist, mongoengine.ValidationError):
        raise HTTPException(404, "book not found") from None
    return OrjsonResponse(book_to_dict(book))


@app.get("/api/books")
def list_books(
    tags: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    page: Annotated[int, Query(ge=1)] = 1,
    expand: Annotated[str | None, Query(pattern="^author$")] = None,
) -> OrjsonResponse:
    books = Book.objects
    if tags is not None:
        books = books(tags=tags)
    books = books.order_by("id").skip((page - 1) * limit).limit(limit)
    if expand:
        books = books.select_related()  # one $in query for the page's authors
    return OrjsonResponse({"items": [book_to_dict(book, expand_author=bool(expand)) for book in books]})


@app.post("/api/books", status_code=201)
def create_book(payload: BookIn, request: Request) -> OrjsonResponse:
    try:
        author = Author.objects.get(id=payload.author)
    except (Author.DoesNotExist, mongoengine.ValidationError):
        raise HTTPException(400, "author: no such author") from None
    book = Book(**payload.model_dump(exclude={"author"}, exclude_none=True), author=author)
    try:
        book.save()
    except mongoengine.ValidationError as exc:
        return OrjsonResponse({"detail": "invalid book", "fields": exc.to_dict()}, 400)
    except mongoengine.NotUniqueError:
        raise HTTPException(409, "a book with this isbn already exists") from None
    location = str(request.url_for("get_book", book_id=str(book.id)))
    return OrjsonResponse(book_to_dict(book), 201, headers={"Location": location})
