"""The ``restengine`` commands against the real database server."""

from __future__ import annotations

from pathlib import Path

from pymongo import MongoClient

from restengine import create_app, db
from tests.integration.api_helpers import run_cli


def test_indexes_creates_declared_indexes_and_reports_them(mongodb_uri: str) -> None:
    first = run_cli("indexes", MONGODB_URI=mongodb_uri)
    assert first.returncode == 0, first.stderr
    assert "books: created" in first.stdout and "isbn_1" in first.stdout
    with MongoClient(mongodb_uri) as client:
        assert {"isbn_1", "author_1", "tags_1__id_1"} <= set(client.get_default_database().books.index_information())
    second = run_cli("indexes", MONGODB_URI=mongodb_uri)
    assert second.returncode == 0, second.stderr
    assert "created" not in second.stdout


def test_indexes_rejects_an_unimportable_documents_module(mongodb_uri: str) -> None:
    result = run_cli("indexes", "--documents", "no.such.module", MONGODB_URI=mongodb_uri)
    assert result.returncode != 0
    assert "RESTENGINE_DOCUMENTS" in result.stderr and "Traceback" not in result.stderr


def test_seed_writes_the_demo_once(mongodb_uri: str) -> None:
    first = run_cli("seed", "--books", "300", "--no-progress", MONGODB_URI=mongodb_uri)
    assert first.returncode == 0, first.stderr
    assert "seeded 300 books" in first.stdout
    again = run_cli("seed", "--books", "300", "--no-progress", MONGODB_URI=mongodb_uri)
    assert "nothing seeded" in again.stdout
    with MongoClient(mongodb_uri) as client:
        assert client.get_default_database().books.count_documents({}) == 300


def test_requests_never_build_indexes(mongodb_uri: str) -> None:
    from restengine.demo.bookstore import Book

    app = create_app({"MONGODB_URI": mongodb_uri})
    try:
        with app.test_request_context():
            assert Book.objects.first() is None
            Book._get_collection()
        with MongoClient(mongodb_uri) as client:
            assert list(client.get_default_database().books.index_information()) in ([], ["_id_"])
    finally:
        db.close_all()


def test_a_short_stored_secret_stops_serve_and_up_with_one_line(tmp_path: Path, mongodb_uri: str) -> None:
    (tmp_path / "secret_key").write_text("short")
    env = {"RESTENGINE_DATA_DIR": str(tmp_path), "MONGODB_URI": mongodb_uri}
    for command in ("serve", "up"):
        result = run_cli(command, **env, RESTENGINE_SECRET_KEY="")
        assert result.returncode != 0, command
        assert "invalid configuration" in result.stderr and "secret_key" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr, result.stderr
