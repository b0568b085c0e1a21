"""A served class referring to one the API does not serve (issue 11, "Keep people out").

``Article`` (served, ``reviewer`` hidden) refers to ``Account`` (not served, with a
``password_hash``) and to ``Editor`` (served, ``salary`` hidden). Only registered
classes can be expanded, referenced by a write or described in ``/openapi.json``;
no answer depends on whether an unserved document exists, and no error names
what the resource does not show.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import mongoengine
import pytest
from bson import ObjectId
from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate

from restengine import Api
from tests.integration.api_helpers import ok, patch, problem
from tests.openapi_contract import Contract
from tests.unserved_models import Account, Article, Editor

SECRET = "unserved-models-test-secret-0123456789abcdef"
ARTICLES, ARTICLE = "/api/articles", "/api/articles/{id}"


@pytest.fixture
def app(mongodb_uri: str) -> Iterator[Flask]:
    mongoengine.connect(host=mongodb_uri, alias="default", uuidRepresentation="standard")
    app = Flask("unserved")
    api = Api(app, secret_key=SECRET)
    api.register(Article, hidden=["reviewer"])
    api.register(Editor, hidden=["salary"])
    try:
        yield app
    finally:
        mongoengine.disconnect()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def contract(client: FlaskClient) -> Contract:
    spec = ok(client.get("/openapi.json"))
    validate(spec)
    return Contract(spec)


def account() -> Account:
    return Account(email="ada@example.com", password_hash="pbkdf2$secret-hash").save()


def missing_id() -> str:
    return str(ObjectId())


def text(response: Any) -> str:
    return str(response.get_data(as_text=True))


def errors(response: Any, status: int = 422) -> Any:
    return problem(response, status)["errors"]


# ---------------------------------------------------------------- expand


def test_an_unserved_class_cannot_be_expanded(client: FlaskClient, contract: Contract) -> None:
    ada = account()
    article = Article(title="t", author=ada, readers=[ada]).save()
    item = f"/api/articles/{article.id}?expand=author"
    for url in ("/api/articles?expand=author", item, "/api/articles?expand=readers"):
        response = client.get(url)
        problem(response, 400, "expand")
        assert "password_hash" not in text(response) and "ccount" not in text(response), text(response)
    listed = contract.check("GET", ARTICLES, client.get(ARTICLES))
    assert listed["items"][0]["author"] == str(ada.id), "still read as the stored id"
    assert listed["items"][0]["readers"] == [str(ada.id)]


def test_expand_answers_alike_for_unknown_hidden_non_reference_and_unserved_fields(client: FlaskClient) -> None:
    def message(param: str) -> str:
        found = errors(client.get(f"/api/articles?expand={param}"), 400)["expand"]
        return str(found).replace(repr(param), "PARAM")

    answers = {param: message(param) for param in ("nope", "reviewer", "title", "author", "readers")}
    assert len(set(answers.values())) == 1, answers
    left_out = errors(client.get("/api/articles?fields=title&expand=editor"), 400)["expand"]
    assert "among the returned fields" in str(left_out), "a shown reference left out by ?fields= says so"


def test_an_expanded_served_class_keeps_its_own_field_rules(client: FlaskClient, contract: Contract) -> None:
    editor = Editor(name="Ed", salary=100).save()
    article = Article(title="t", editor=editor, reviewer=editor).save()
    item = contract.check("GET", ARTICLE, client.get(f"/api/articles/{article.id}?expand=editor"))
    assert item["editor"] == {"id": str(editor.id), "name": "Ed"}, "salary stays hidden"
    assert "reviewer" not in item


# ---------------------------------------------------------------- the OpenAPI document


def test_the_document_describes_nothing_of_an_unserved_class(contract: Contract) -> None:
    spec = contract.spec
    document = json.dumps(spec)
    assert "password_hash" not in document
    assert "Account" not in document, "not as a component, a reference label or a generic reference's class"
    schemas = spec["components"]["schemas"]
    assert "Editor" in schemas and "Article" in schemas
    author = schemas["Article"]["properties"]["author"]
    assert "$ref" not in json.dumps(author) and "x-reference" not in json.dumps(author), "the id only"
    assert schemas["Article"]["properties"]["editor"]["anyOf"][1] == {"$ref": "#/components/schemas/Editor"}
    expand = {p["name"]: p for p in spec["paths"][ARTICLES]["get"]["parameters"] if "name" in p}["expand"]
    assert expand["schema"]["items"]["enum"] == ["editor"]
    about = schemas["ArticleCreate"]["properties"]["about"]
    assert about["properties"]["_cls"] == {"enum": ["Article", "Editor"]}
    topic = schemas["ArticleCreate"]["properties"]["topic"]
    assert topic["properties"]["_cls"] == {"enum": ["Editor"]} and "enum" not in topic, "the served choices"
    assert schemas["Article"]["properties"]["topic"]["properties"]["_cls"] == {"type": ["string", "null"]}


def test_the_document_says_which_writes_of_an_unserved_reference_pass(client: FlaskClient, contract: Contract) -> None:
    ada = account()
    article = ok(client.post(ARTICLES, json={"title": "t"}), 201)
    Article.objects(id=article["id"]).update(set__author=ada)
    stored = ok(client.get(f"/api/articles/{article['id']}"))
    assert contract.request_errors("POST", ARTICLES, {"title": "t", "author": str(ada.id)}), "refused by the document"
    assert contract.request_errors("POST", ARTICLES, {"title": "t", "author": None}) == []
    assert contract.request_errors("PUT", ARTICLE, stored) == [], "its stored value may be repeated"
    assert contract.check("PUT", ARTICLE, client.put(f"/api/articles/{article['id']}", json=stored))["author"] == str(
        ada.id
    )


# ---------------------------------------------------------------- writes: no existence oracle


@pytest.mark.parametrize("field", ["author", "readers"])
def test_a_reference_to_an_unserved_class_is_refused_alike_whether_it_exists_or_not(
    client: FlaskClient, contract: Contract, field: str
) -> None:
    ada = account()

    def body(pk: str) -> dict[str, Any]:
        return {"title": "t", field: pk if field == "author" else [pk]}

    existing = client.post(ARTICLES, json=body(str(ada.id)))
    missing = client.post(ARTICLES, json=body(missing_id()))
    contract.check("POST", ARTICLES, existing)
    assert errors(existing) == errors(missing), (text(existing), text(missing))
    assert "accounts" not in text(existing) and "ccount" not in text(missing)
    assert Article.objects.count() == 0
    article = ok(client.post(ARTICLES, json={"title": "t"}), 201)
    url = f"/api/articles/{article['id']}"
    assert errors(patch(client, url, body(str(ada.id)))) == errors(patch(client, url, body(missing_id())))
    bulk = {"operations": [{"op": "insert", "document": body(str(ada.id))}, {"op": "insert", "document": body("1")}]}
    refused = errors(client.post("/api/articles/_bulk", json=bulk))
    assert refused["0"] == refused["1"], refused


def test_a_generic_reference_names_only_served_classes(client: FlaskClient, contract: Contract) -> None:
    ada = account()
    editor = Editor(name="Ed").save()

    def post(cls: str, pk: str) -> Any:
        return client.post(ARTICLES, json={"title": "t", "about": {"_cls": cls, "id": pk}})

    existing, missing, malformed, unknown = (
        post("Account", str(ada.id)), post("Account", missing_id()), post("Account", "x"), post("NoSuchClass", "x")
    )  # fmt: skip
    assert errors(existing) == errors(missing) == errors(malformed), "the id of an unserved class is not even parsed"
    assert json.dumps(errors(unknown)).replace("NoSuchClass", "Account") == json.dumps(errors(existing))
    assert "accounts" not in text(existing)
    chosen = client.post(ARTICLES, json={"title": "t", "topic": {"_cls": "Account", "id": str(ada.id)}})
    assert errors(chosen)["topic"] == errors(existing)["about"], "one of its choices, but not served"
    gone = errors(post("Editor", missing_id()))
    assert gone["about"].startswith("refers to a missing document"), gone
    created = contract.check("POST", ARTICLES, post("Editor", str(editor.id)))
    assert created["about"] == {"_cls": "Editor", "id": str(editor.id)}


def test_a_stored_reference_to_an_unserved_class_is_read_and_kept_as_it_is(
    client: FlaskClient, contract: Contract
) -> None:
    ada = account()
    article = Article(title="t", author=ada, about=ada, topic=ada).save()
    url = f"/api/articles/{article.id}"
    item = contract.check("GET", ARTICLE, client.get(url))
    assert item["about"] == item["topic"] == {"_cls": "Account", "id": str(ada.id)}, "reads are unchanged"
    ada.delete()  # the stored references now dangle; no answer may tell
    changed = ok(patch(client, url, {"title": "new"}))
    assert (changed["title"], changed["author"]) == ("new", str(ada.id))
    update = {"op": "update", "id": str(article.id), "patch": {"title": "bulk"}}
    assert ok(client.post("/api/articles/_bulk", json={"operations": [update]}))["results"][0]["status"] == 200
    cleared = ok(patch(client, url, {"author": None}))
    assert cleared["author"] is None, "a reference to an unserved class may be removed"
