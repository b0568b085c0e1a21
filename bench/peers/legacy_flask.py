"""The naive legacy app: Flask views over MongoEngine, as a typical codebase writes them.

Documents are loaded as MongoEngine instances and serialized with ``to_mongo()`` plus
``json.dumps`` and a ``default`` for ObjectId/datetime/Decimal.

Run from the repository root, with ``MONGODB_URI`` set:

- Flask's development server, one request at a time: ``python -m bench.peers.legacy_flask --port P``
- gunicorn's default sync worker: ``gunicorn -w 2 -b 127.0.0.1:P bench.peers.legacy_flask:app``

URLs: ``GET /api/books/<id>``, ``GET /api/books?tags=T&limit=20[&expand=author][&page=N]``,
``POST /api/books``, ``GET /healthz``.
"""

from __future__ import annotations

import argparse
import datetime
import decimal
import json
import os
from typing import Any

import mongoengine
from bson import ObjectId
from flask import Flask, Response, request, url_for

from restengine.demo.bookstore import Author, Book

# Lazy: PyMongo opens no socket until the first query, so gunicorn can fork after this.
mongoengine.connect(host=os.environ["MONGODB_URI"], uuidRepresentation="pythonLegacy", connect=False)

app = Flask(__name__)

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def json_default(value: Any) -> Any:
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(payload, default=json_default), status=status, headers=headers,
                    mimetype="application/json")  # fmt: skip


def error(status: int, message: str, **extra: Any) -> Response:
    return json_response({"error": message, **extra}, status)


def to_dict(doc: mongoengine.Document) -> dict[str, Any]:
    data = doc.to_mongo().to_dict()
    data["id"] = data.pop("_id")
    return data


def book_to_dict(book: Book, expand_author: bool = False) -> dict[str, Any]:
    data = to_dict(book)
    if expand_author and isinstance(book.author, Author):
        data["author"] = to_dict(book.author)
    return data


def int_arg(name: str, default: int, maximum: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer") from None
    if value < 1 or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be between 1 and {maximum}" if maximum else f"{name} must be >= 1")
    return value


@app.get("/healthz")
def healthz() -> Response:
    return json_response({"status": "ok"})


@app.get("/api/books/<book_id>")
def get_book(book_id: str) -> Response:
    try:
        book = Book.objects.get(id=book_id)
    except (Book.DoesNotExist, mongoengine.ValidationError):
        return error(404, "book not found")
    return json_response(book_to_dict(book))


@app.get("/api/books")
def list_books() -> Response:
    try:
        limit = int_arg("limit", DEFAULT_LIMIT, MAX_LIMIT)
        page = int_arg("page", 1)
    except ValueError as exc:
        return error(400, str(exc))
    expand = request.args.get("expand", "")
    if expand not in ("", "author"):
        return error(400, "expand: only 'author' can be expanded")

    books = Book.objects
    tag = request.args.get("tags")
    if tag is not None:
        books = books(tags=tag)
    books = books.order_by("id").skip((page - 1) * limit).limit(limit)
    if expand:
        books = books.select_related()  # one $in query for the page's authors
    return json_response({"items": [book_to_dict(book, expand_author=bool(expand)) for book in books]})


@app.post("/api/books")
def create_book() -> Response:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return error(400, "expected a JSON object")
    try:
        author = Author.objects.get(id=data.get("author"))
    except (Author.DoesNotExist, mongoengine.ValidationError):
        return error(400, "author: no such author")
    fields = {k: data[k] for k in ("title", "isbn", "price", "tags", "currency", "pages", "in_stock") if k in data}
    book = Book(author=author, **fields)
    try:
        book.save()
    except mongoengine.ValidationError as exc:
        return error(400, "invalid book", fields=exc.to_dict())
    except mongoengine.NotUniqueError:
        return error(409, "a book with this isbn already exists")
    return json_response(book_to_dict(book), 201, {"Location": url_for("get_book", book_id=str(book.id))})


def main() -> None:
    parser = argparse.ArgumentParser(description="The legacy Flask + MongoEngine peer on Flask's dev server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args()
    app.run(host=args.host, port=args.port, threaded=False)


if __name__ == "__main__":
    main()
