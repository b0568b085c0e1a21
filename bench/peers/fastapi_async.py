"""FastAPI over PyMongo's native asyncio client (``pymongo.AsyncMongoClient``).

One client per worker process, created in the lifespan (never before uvicorn starts the
worker). Reads return the stored document as is (no projection); the conversion is
manual: ``_id`` → ``id`` and the author reference as strings, datetimes as ISO 8601 UTC
(orjson), ``price`` as the stored float. Writes are validated by a Pydantic model.

Run from the repository root, with ``MONGODB_URI`` set::

    uvicorn bench.peers.fastapi_async:app --workers 2 --loop uvloop --http httptools --port P

URLs: ``GET /api/books/<id>``, ``GET /api/books?tags=T&limit=20[&expand=author][&page=N]``,
``POST /api/books``, ``GET /healthz``.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Annotated, Any, Literal

import orjson
from bson import ObjectId
from bson.errors import InvalidId
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError


class OrjsonResponse(JSONResponse):
    """orjson; naive datetimes (as PyMongo returns them) are UTC and end in ``Z``.

    (FastAPI's own ``ORJSONResponse`` is deprecated in this FastAPI version.)
    """

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(os.environ["MONGODB_URI"])
    app.state.db = client.get_default_database()
    try:
        yield
    finally:
        await client.close()


app = FastAPI(title="bookstore (FastAPI + async PyMongo)", lifespan=lifespan, default_response_class=OrjsonResponse)

Currency = Literal["EUR", "USD", "GBP"]


class BookIn(BaseModel):
    """What a client may send to create a book (the same constraints as the Book Document)."""

    title: str = Field(max_length=200)
    isbn: str | None = Field(default=None, pattern=r"^\d{13}$")
    author: str = Field(pattern=r"^[0-9a-f]{24}$")
    price: Decimal | None = Field(default=None, ge=0)
    tags: list[Annotated[str, Field(max_length=32)]] = []
    currency: Currency | None = None
    published: datetime.datetime | None = None
    pages: int | None = Field(default=None, ge=1)
    in_stock: bool = True


def db(request: Request) -> AsyncDatabase[dict[str, Any]]:
    return request.app.state.db  # type: ignore[no-any-return]


def author_out(doc: dict[str, Any]) -> dict[str, Any]:
    doc["id"] = str(doc.pop("_id"))
    return doc


def book_out(doc: dict[str, Any]) -> dict[str, Any]:
    doc["id"] = str(doc.pop("_id"))
    author = doc.get("author")
    if isinstance(author, ObjectId):
        doc["author"] = str(author)
    return doc


@app.get("/healthz")
async def healthz() -> OrjsonResponse:
    return OrjsonResponse({"status": "ok"})


@app.get("/api/books/{book_id}")
async def get_book(book_id: str, request: Request) -> OrjsonResponse:
    try:
        oid = ObjectId(book_id)
    except InvalidId:
        raise HTTPException(404, "book not found") from None
    doc = await db(request).books.find_one({"_id": oid})
    if doc is None:
        raise HTTPException(404, "book not found")
    return OrjsonResponse(book_out(doc))


@app.get("/api/books")
async def list_books(
    request: Request,
    tags: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    page: Annotated[int, Query(ge=1)] = 1,
    expand: Annotated[str | None, Query(pattern="^author$")] = None,
) -> OrjsonResponse:
    database = db(request)
    query = {"tags": tags} if tags is not None else {}
    cursor = database.books.find(query).sort("_id", 1).skip((page - 1) * limit).limit(limit)
    docs = await cursor.to_list()
    if expand:  # one $in query for the page's authors
        ids = list({d["author"] for d in docs if isinstance(d.get("author"), ObjectId)})
        authors = {a["_id"]: a for a in await database.author.find({"_id": {"$in": ids}}).to_list()}
        for d in docs:
            author = authors.get(d.get("author"))
            if author is not None:
                d["author"] = author_out(dict(author))
    return OrjsonResponse({"items": [book_out(d) for d in docs]})


@app.post("/api/books", status_code=201)
async def create_book(payload: BookIn, request: Request) -> OrjsonResponse:
    database = db(request)
    author_id = ObjectId(payload.author)
    if await database.author.find_one({"_id": author_id}, {"_id": 1}) is None:
        raise HTTPException(400, "author: no such author")
    doc = payload.model_dump(exclude_none=True)
    doc["author"] = author_id
    doc["tags"] = list(dict.fromkeys(t.strip().lower() for t in payload.tags if t.strip()))  # as Book.clean()
    if payload.price is not None:
        doc["price"] = float(payload.price.quantize(Decimal("0.01")))  # stored as a float, like DecimalField
    try:
        result = await database.books.insert_one(doc)
    except DuplicateKeyError:
        raise HTTPException(409, "a book with this isbn already exists") from None
    location = str(request.url_for("get_book", book_id=str(result.inserted_id)))
    return OrjsonResponse(book_out(doc), 201, headers={"Location": location})
