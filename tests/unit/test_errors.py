"""Library and server errors reach clients as the API's own words: no class, collection, index or stored name."""

from __future__ import annotations

from typing import Any

import pytest
from mongoengine import (
    Document,
    EmailField,
    EmbeddedDocument,
    EmbeddedDocumentField,
    StringField,
)
from mongoengine.errors import InvalidQueryError, LookUpError, NotUniqueError, ValidationError

from restengine.api.options import ResourceOptions
from restengine.api.resource import Resource
from restengine.api.writes import unique_fields
from restengine.errors import Problem, duplicate_message, to_problem, unique_index_fields

E11000 = 'E11000 duplicate key error collection: shop.er_people index: em_1 dup key: { em: "a@b.c" }'


class ErPlace(EmbeddedDocument):
    city = StringField(db_field="c")


class ErPerson(Document):
    code = StringField(primary_key=True)
    name = StringField(required=True, db_field="n")
    email = EmailField(unique=True, db_field="em")
    token = StringField(unique=True, db_field="tk")
    home = EmbeddedDocumentField(ErPlace, db_field="h")

    meta: dict[str, Any] = {"collection": "er_people", "auto_create_index": False}


def _problem(exc: BaseException) -> Problem:
    problem = to_problem(exc)
    assert problem is not None
    return problem


def _text(problem: Problem) -> str:
    return f"{problem.detail} {problem.errors} {problem.extra}"


def test_not_unique_is_409_without_the_servers_message() -> None:
    problem = _problem(NotUniqueError(f"Tried to save duplicate unique keys ({E11000})"))
    assert problem.status == 409
    for leak in ("E11000", "er_people", "em_1", "dup key", "a@b.c"):
        assert leak not in _text(problem)


@pytest.mark.parametrize(
    "exc",
    [InvalidQueryError('Cannot resolve field "tk"'), LookUpError('Cannot resolve field "tk" of ErPerson')],
    ids=["InvalidQueryError", "LookUpError"],
)
def test_query_errors_are_400_without_the_librarys_message(exc: Exception) -> None:
    problem = _problem(exc)
    assert problem.status == 400
    assert "tk" not in _text(problem) and "ErPerson" not in _text(problem)


def test_validation_errors_name_fields_but_not_the_class() -> None:
    with pytest.raises(ValidationError) as raised:
        ErPerson(code="X").validate()
    problem = _problem(raised.value)
    assert problem.status == 422
    assert problem.errors == {"name": "Field is required"}
    assert "ErPerson" not in _text(problem), "MongoEngine's message names the class and the primary key"


def test_duplicate_message_names_fields_or_nothing() -> None:
    assert duplicate_message(["email"]) == "Another item has the same email."
    assert duplicate_message(["a", "b"]) == "Another item has the same combination of a, b."
    assert (
        duplicate_message(None)
        == duplicate_message([])
        == ("Another item has the same value for a field that must be unique.")
    )


def test_unique_index_fields_reads_the_key_pattern_only() -> None:
    assert unique_index_fields({"keyPattern": {"em": 1, "h.c": -1}, "errmsg": E11000}) == ["em", "h.c"]
    assert unique_index_fields({"errmsg": E11000}) is None
    assert unique_index_fields({"keyPattern": "em_1"}) is None
    assert unique_index_fields(None) is None


def test_unique_fields_maps_stored_names_to_the_resources_names() -> None:
    resource = Resource(ErPerson, ResourceOptions())
    assert unique_fields(resource, {"keyPattern": {"em": 1}}) == ["email"]
    assert unique_fields(resource, {"keyPattern": {"_id": 1}}) == ["id"]
    assert unique_fields(resource, {"keyPattern": {"h.c": 1, "n": 1}}) == ["home.city", "name"]
    assert unique_fields(resource, {"keyPattern": {"legacy_only": 1}}) is None, "not a field of the resource"
    assert unique_fields(resource, {"errmsg": E11000}) is None, "the server did not say"


def test_unique_fields_never_names_a_hidden_field() -> None:
    hidden = Resource(ErPerson, ResourceOptions(hidden=["token"]))
    assert unique_fields(hidden, {"keyPattern": {"tk": 1}}) is None
    assert unique_fields(hidden, {"keyPattern": {"em": 1, "tk": 1}}) is None, "not even the visible part"
    shown = Resource(ErPerson, ResourceOptions(fields=["code", "name"]))
    assert unique_fields(shown, {"keyPattern": {"em": 1}}) is None, "not among the exposed fields"
