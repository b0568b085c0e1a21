"""Filters no index can serve (``contains``, ``icontains``, ``istartswith``, ``endswith``, ``iendswith``,
``iexact``) are off unless a resource's options (or ``RESTENGINE_EXPENSIVE_FILTERS``) allow them: a clear 400
instead of a scan of the whole collection, and an OpenAPI document that lists only what is allowed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

import restengine
from restengine.api.operators import EXPENSIVE
from restengine.api.options import ResourceOptions
from restengine.api.resource import Resource
from restengine.config import ConfigError, load_settings
from tests.integration.api_helpers import customer, legacy_app, legacy_registry
from tests.legacy_models import Customer


@pytest.fixture
def serve(mongodb_uri: str) -> Iterator[object]:
    apps: list[Flask] = []

    def make(allowed: str) -> Flask:
        app = legacy_app(mongodb_uri, None, RESTENGINE_EXPENSIVE_FILTERS=allowed)
        apps.append(app)
        return app

    with legacy_registry():
        try:
            yield make
        finally:
            restengine.db.close_all()


def parameters(app: Flask, path: str = "/api/customers") -> set[str]:
    spec = app.test_client().get("/openapi.json").get_json()
    return {p["name"] for p in spec["paths"][path]["get"].get("parameters", []) if "name" in p}


def test_by_default_a_filter_no_index_serves_is_a_400_that_says_why(serve: object) -> None:
    app = serve("")  # type: ignore[operator]
    customer("ABC123", "Ada")
    client = app.test_client()
    for op in sorted(EXPENSIVE):
        refused = client.get(f"/api/customers?name__{op}=ad")
        assert refused.status_code == 400, op
        assert refused.content_type == "application/problem+json"
        assert "no index can serve it" in refused.get_data(as_text=True), op
    assert client.get("/api/customers?name__startswith=Ad").get_json()["items"][0]["id"] == "ABC123"
    assert client.get("/api/customers?name=Ada").status_code == 200
    assert client.get("/api/customers?name__in=Ada,Bo").status_code == 200
    listed = parameters(app)
    assert "name__startswith" in listed and "name__ne" in listed
    assert not {f"name__{op}" for op in EXPENSIVE} & listed, "the document lists only what is allowed"


def test_the_setting_allows_one_operator_a_field_or_a_resource(serve: object) -> None:
    one = serve("customers.name__icontains")  # type: ignore[operator]
    customer("ABC123", "Ada")
    client = one.test_client()
    assert client.get("/api/customers?name__icontains=AD").get_json()["items"][0]["id"] == "ABC123"
    assert client.get("/api/customers?name__iexact=ada").status_code == 400, "only the operator named"
    assert client.get("/api/customers?email__icontains=abc").status_code == 400, "only on the field named"
    assert {"name__icontains"} == {p for p in parameters(one) if p.split("__")[-1] in EXPENSIVE}

    field = serve("customers.name").test_client()  # type: ignore[operator]
    assert field.get("/api/customers?name__iexact=ada").status_code == 200
    assert field.get("/api/customers?email__icontains=abc").status_code == 400
    whole = serve("customers").test_client()  # type: ignore[operator]
    assert whole.get("/api/customers?email__icontains=ABC").get_json()["items"][0]["id"] == "ABC123"
    assert serve("*").test_client().get("/api/customers?email__iendswith=COM").status_code == 200  # type: ignore[operator]


def test_options_allow_them_in_code_and_refuse_a_field_that_is_not_filterable() -> None:
    lookup = lambda cls: None  # noqa: E731 - no other resource is needed here
    allowed = Resource(Customer, ResourceOptions(expensive=["name__icontains"]), lookup).filterable
    assert "icontains" in allowed["name"] and "iexact" not in allowed["name"]
    assert "icontains" not in allowed["email"]
    named = Resource(Customer, ResourceOptions(filterable={"name": ["eq", "icontains"]}), lookup).filterable
    assert named["name"] == {"eq", "icontains"}, "operators named in filterable are the owner's choice"
    with pytest.raises(ValueError, match="cannot filter on"):
        Resource(Customer, ResourceOptions(filterable=["name"], expensive=["email"]), lookup)
    with pytest.raises(ValueError, match="unknown field"):
        Resource(Customer, ResourceOptions(expensive=["nope__icontains"]), lookup)


def test_the_setting_s_syntax(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGODB_URI", "mongodb://127.0.0.1:1/db")
    monkeypatch.setenv("RESTENGINE_EXPENSIVE_FILTERS", "books.title__icontains, author")
    assert load_settings().expensive_filters == ("books.title__icontains", "author")
    for bad in ("books.title.x", "$where", "books.", "a b"):
        monkeypatch.setenv("RESTENGINE_EXPENSIVE_FILTERS", bad)
        with pytest.raises(ConfigError, match="RESTENGINE_EXPENSIVE_FILTERS"):
            load_settings()
