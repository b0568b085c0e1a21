from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
from bson import ObjectId
from mongoengine import ValidationError

from restengine.config import ConfigError
from restengine.demo.bookstore import Author, Book, Review
from restengine.documents import load_documents
from tests import legacy_models_for_discovery as legacy


def test_finds_the_demo_documents_but_not_embedded_ones() -> None:
    found = load_documents(["restengine.demo.bookstore"])
    assert found == [Author, Book]
    assert Review not in found


def test_skips_abstract_embedded_and_imported_classes_and_keeps_order() -> None:
    found = load_documents(["tests.legacy_models_for_discovery"])
    assert found == [legacy.Shape, legacy.Circle]


def test_keeps_module_order_without_duplicates() -> None:
    found = load_documents(
        ["tests.legacy_models_for_discovery", "restengine.demo.bookstore", "tests.legacy_models_for_discovery"]
    )
    assert found == [legacy.Shape, legacy.Circle, Author, Book]


def test_a_module_that_cannot_be_imported_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^RESTENGINE_DOCUMENTS: cannot import 'no_such\.models'") as info:
        load_documents(["no_such.models"])
    assert "\n" not in str(info.value)


def test_a_module_that_fails_while_importing_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "raising_models.py").write_text('raise RuntimeError("no database settings\\nsecond line")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "raising_models", raising=False)
    with pytest.raises(ConfigError) as info:
        load_documents(["raising_models"])
    assert str(info.value) == (
        "RESTENGINE_DOCUMENTS: cannot import 'raising_models': RuntimeError: no database settings"
    )
    assert isinstance(info.value.__cause__, RuntimeError)


def test_a_module_without_documents_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    empty = types.ModuleType("models_without_documents")
    empty.Review = Review  # type: ignore[attr-defined]  # an EmbeddedDocument does not count
    monkeypatch.setitem(sys.modules, empty.__name__, empty)
    with pytest.raises(ConfigError, match=r"^RESTENGINE_DOCUMENTS: module 'models_without_documents' defines no"):
        load_documents([empty.__name__])


def test_no_module_at_all_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^RESTENGINE_DOCUMENTS: no module given"):
        load_documents([])


def test_book_clean_normalises_tags_in_first_seen_order() -> None:
    book = Book(tags=["SciFi", "space ", "scifi", "", "  ", "Drama", "SPACE"])
    book.clean()
    assert book.tags == ["scifi", "space", "drama"]


def test_book_clean_runs_on_validate_and_leaves_bad_tags_to_field_validation() -> None:
    book = Book(title="T", author=Author(id=ObjectId(), name="A"), tags=["A", "a", "B"])
    book.validate()
    assert book.tags == ["a", "b"]
    book.tags = ["ok", 7]
    with pytest.raises(ValidationError):
        book.validate()
