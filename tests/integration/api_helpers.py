"""Shared pieces of the HTTP contract tests: the app, seed data, checks and a command counter.

The command listener is registered with PyMongo when this module is imported
(at test collection), so every client an app builds later reports to it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import jwt
from flask import Flask
from flask.testing import FlaskClient
from mongoengine.base import BaseDocument
from mongoengine.base.common import _document_registry
from pymongo import monitoring
from werkzeug.test import TestResponse

import restengine.db
from restengine import create_app
from restengine.documents import load_documents
from restengine.ops.indexes import create_indexes
from tests import legacy_models
from tests.keys import OTHER_SECRET, TEST_SECRET
from tests.legacy_models import Address, Customer, Order, OrderLine, Product

ALL_DOCUMENTS = "restengine.demo.bookstore,tests.legacy_models"
PROBLEM_KEYS = {"type", "title", "status", "detail"}
READS = frozenset({"find", "aggregate", "count", "getMore"})
MERGE_PATCH = "application/merge-patch+json"


class CommandCounter(monitoring.CommandListener):
    """The commands started against one database while :meth:`counting` (their names) or :meth:`recording`
    (the commands as sent) is active."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._database: str | None = None
        self.names: list[str] = []
        self.sent: list[dict[str, Any]] = []

    @contextmanager
    def _watching(self, database: str) -> Iterator[None]:
        with self._lock:
            self._database, self.names, self.sent = database, [], []
        try:
            yield
        finally:
            with self._lock:
                self._database = None

    @contextmanager
    def counting(self, database: str) -> Iterator[list[str]]:
        with self._watching(database):
            yield self.names

    @contextmanager
    def recording(self, database: str) -> Iterator[list[dict[str, Any]]]:
        with self._watching(database):
            yield self.sent

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        with self._lock:
            if self._database is not None and event.database_name == self._database:
                self.names.append(event.command_name)
                self.sent.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


COMMANDS = CommandCounter()
monitoring.register(COMMANDS)


def reads(names: list[str]) -> list[str]:
    return [name for name in names if name in READS]


def make_app(mongodb_uri: str, documents: str = ALL_DOCUMENTS) -> Flask:
    return create_app(
        {"MONGODB_URI": mongodb_uri, "RESTENGINE_DOCUMENTS": documents, "RESTENGINE_SECRET_KEY": TEST_SECRET}
    )


@contextmanager
def legacy_registry() -> Iterator[None]:
    """Make MongoEngine resolve ``_cls`` names to the classes of ``tests.legacy_models``.

    ``tests.legacy_models_for_discovery`` (imported by the unit tests in the
    same session) defines another ``Shape``/``Shape.Circle``; MongoEngine keeps
    one class per name, the last defined, and loads ``_cls`` through it.
    Connect and disconnect inside this block: ``mongoengine.disconnect``
    resets the cached collection of registered classes only.
    """
    ours = {
        cls._class_name: cls
        for cls in vars(legacy_models).values()
        if isinstance(cls, type) and issubclass(cls, BaseDocument) and cls.__module__ == legacy_models.__name__
    }
    saved = {name: _document_registry[name] for name in ours if name in _document_registry}
    _document_registry.update(ours)
    try:
        yield
    finally:
        _document_registry.update(saved)


@contextmanager
def api_app(mongodb_uri: str, documents: str = ALL_DOCUMENTS) -> Iterator[Flask]:
    """The real app on a fresh database, with every declared index built."""
    with legacy_registry():
        app = make_app(mongodb_uri, documents)
        try:
            create_indexes(load_documents(["tests.legacy_models", "restengine.demo.bookstore"]))
            yield app
        finally:
            restengine.db.close_all()


def database_name() -> str:
    return str(restengine.db.get_database().name)


def raw(collection: str, pk: Any) -> dict[str, Any]:
    """The stored document, read with PyMongo (db_field names, BSON types)."""
    found = restengine.db.get_database()[collection].find_one({"_id": pk})
    assert found is not None, f"{collection}/{pk!r} is not stored"
    return dict(found)


def stored_keys(doc_cls: type[Any]) -> set[str]:
    """The top-level keys MongoEngine itself may write for ``doc_cls`` (``_cls`` only when inheriting)."""
    keys = {field.db_field for name, field in doc_cls._fields.items() if name != "_cls"}
    if doc_cls._meta.get("allow_inheritance"):
        keys.add("_cls")
    return keys


def problem(response: TestResponse, status: int, param: str | None = None) -> dict[str, Any]:
    """Check a problem+json answer; with ``param``, that its ``errors`` name that parameter or field."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    assert response.mimetype == "application/problem+json"
    body = response.get_json(force=True)
    assert set(body) >= PROBLEM_KEYS, body
    assert body["status"] == status
    if param is not None:
        assert names(body.get("errors"), param), body
    return dict(body)


def names(errors: Any, field: str) -> bool:
    """Whether ``errors`` (keyed by parameter or field) names ``field``, or a path inside it (``lines.0.product``)."""
    if not isinstance(errors, dict):
        return False
    return any(key == field or key.startswith((f"{field}.", f"{field}__", f"{field}[")) for key in map(str, errors))


def ok(response: TestResponse, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    return response.get_json()


def items(client: FlaskClient, url: str) -> list[dict[str, Any]]:
    return list(ok(client.get(url))["items"])


def ids(client: FlaskClient, url: str) -> list[str]:
    return [item["id"] for item in items(client, url)]


def patch(client: FlaskClient, path: str, body: Any, content_type: str = MERGE_PATCH, **kwargs: Any) -> TestResponse:
    return client.patch(path, data=json.dumps(body), content_type=content_type, **kwargs)


def stored_count(collection: str) -> int:
    return int(restengine.db.get_database()[collection].count_documents({}))


def parse_time(value: str) -> datetime:
    assert isinstance(value, str) and value.endswith("Z"), value
    return datetime.fromisoformat(value[:-1] + "+00:00")


def strong_etag(response: TestResponse) -> str:
    etag = response.headers.get("ETag")
    assert etag and etag.startswith('"') and etag.endswith('"') and len(etag) > 2, etag
    return etag


# Seed data, written through the legacy classes themselves.


def customer(code: str, name: str, **fields: Any) -> Customer:
    fields.setdefault("email", f"{code.lower()}@example.com")
    return Customer(code=code, name=name, **fields).save()


def product(name: str, price: str, **fields: Any) -> Product:
    return Product(name=name, price=Decimal(price), **fields).save()


def order(buyer: Customer, *lines: tuple[Product, int], **fields: Any) -> Order:
    order_lines = [OrderLine(product=p, quantity=q, unit_price=p.price) for p, q in lines]
    return Order(customer=buyer, lines=order_lines, **fields).save()


def shop() -> tuple[Customer, Product, Order]:
    """One customer with one order of two pens, shipped to Lyon."""
    ada = customer("ABC123", "Ada", joined=datetime(2024, 1, 2, 3, 4, 5), tags=["vip"])
    pen = product("Pen", "12.50", blob=b"\xfb\xff\xbf")
    placed = order(ada, (pen, 2), shipping=Address(street="1 rue Neuve", city="Lyon", country="FR"))
    return ada, pen, placed


def new_customer(**fields: Any) -> dict[str, Any]:
    """A valid customer body for POST."""
    return {"code": "NEW001", "name": "Nia", "email": "nia@example.com", **fields}


def order_body(sku: str, **fields: Any) -> dict[str, Any]:
    """A valid order body for POST/PUT: one line of ``sku`` for customer ABC123."""
    return {"customer": "ABC123", "lines": [{"product": sku, "quantity": 1, "unit_price": "1.00"}], **fields}


UTC_2024 = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``restengine ARGS`` in a subprocess with ``env`` added to this environment."""
    return subprocess.run(
        [sys.executable, "-m", "restengine.ops.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )


def legacy_app(mongodb_uri: str, redis_url: str | None = None, **config: Any) -> Flask:
    """The real app serving ``tests.legacy_models`` (with Redis when ``redis_url`` is given), ``config`` on top."""
    settings: dict[str, Any] = {
        "MONGODB_URI": mongodb_uri,
        "RESTENGINE_DOCUMENTS": "tests.legacy_models",
        "RESTENGINE_SECRET_KEY": TEST_SECRET,
        **config,
    }
    if redis_url:
        settings["REDIS_URL"] = redis_url
    return create_app(settings)


@contextmanager
def protected_app(mongodb_uri: str, redis_url: str | None = None, **config: Any) -> Iterator[Flask]:
    """The legacy app with the access check on, taking HS256 JWTs signed with ``OTHER_SECRET``, ``config`` on top."""
    settings = {"RESTENGINE_AUTH": "on", "RESTENGINE_JWT_SECRET": OTHER_SECRET, **config}
    with legacy_registry():
        app = legacy_app(mongodb_uri, redis_url, **settings)
        try:
            yield app
        finally:
            restengine.db.close_all()


def nested(levels: int) -> Any:
    """``1`` inside ``levels`` lists."""
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


@contextmanager
def legacy_served(mongodb_uri: str, redis_url: str | None = None, **config: Any) -> Iterator[Flask]:
    """:func:`legacy_app` with customer ABC123 (Ada) stored; its connections closed afterwards."""
    with legacy_registry():
        app = legacy_app(mongodb_uri, redis_url, **config)
        try:
            customer("ABC123", "Ada")
            yield app
        finally:
            restengine.db.close_all()


BOOKSTORE_POLICY = """
[anonymous]
books = { actions = ["read"], hidden = ["price"] }
author = ["read"]

[roles.editor]
"*" = ["read", "create", "update", "delete"]
"""
"""The profiles' tests: anonymous callers read (not a book's price), editors do everything."""


def editor() -> dict[str, str]:
    """The bearer JWT of an editor (see :data:`BOOKSTORE_POLICY`)."""
    claims = {"sub": "ed", "roles": ["editor"], "exp": int(time.time()) + 300}
    return {"Authorization": "Bearer " + jwt.encode(claims, OTHER_SECRET, algorithm="HS256")}


@contextmanager
def bookstore(mongodb_uri: str, profile: str, *, policy: Path | None = None, **config: Any) -> Iterator[Flask]:
    """The demo bookstore served in ``profile``'s wire format (with the access check and ``policy`` when given),
    an author and twelve books stored, ``config`` on top."""
    from restengine.demo.bookstore import Author, Book

    settings: dict[str, Any] = {
        "MONGODB_URI": mongodb_uri,
        "RESTENGINE_DOCUMENTS": "restengine.demo.bookstore",
        "RESTENGINE_SECRET_KEY": TEST_SECRET,
        "RESTENGINE_PROFILE": profile,
        **config,
    }
    if policy is not None:
        policy.write_text(BOOKSTORE_POLICY)
        settings.update(RESTENGINE_AUTH="on", RESTENGINE_JWT_SECRET=OTHER_SECRET, RESTENGINE_POLICY=str(policy))
    app = create_app(settings)
    try:
        create_indexes([Author, Book])
        ada = Author(name="Ada Lovelace", born=datetime(1815, 12, 10), country="GB").save()
        for n in range(12):
            Book(
                title=f"Notes {n:02d}", isbn=f"97800000{n:05d}", author=ada, tags=["math"] if n % 2 else ["poetry"],
                price=str(10 + n), published=datetime(2000 + n, 1, 2, 3, 4, 5), pages=100 + n,
            ).save()  # fmt: skip
        yield app
    finally:
        restengine.db.close_all()
