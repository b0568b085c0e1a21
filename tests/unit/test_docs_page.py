"""The /docs page and its assets, served by the app itself (the browser test is tests/e2e/test_docs_page.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Blueprint, Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from restengine import Api
from restengine.api.docs import ASSET_VERSION
from tests.keys import TEST_SECRET
from tests.legacy_models import Customer


def mounted(app_or_bp: Flask | Blueprint, **options: Any) -> Api:
    api = Api(app_or_bp, secret_key=TEST_SECRET, **options)
    api.register(Customer)
    return api


def app_with_api(**options: Any) -> Flask:
    app = Flask("shop")
    mounted(app, **options)
    return app


def page_urls(html: str) -> list[str]:
    return re.findall(r'(?:href|src|data-spec-url)="([^"]*)"', html)


def fetch(client: FlaskClient, url: str) -> TestResponse:
    """GET ``url``, read and closed (a served file is a stream)."""
    with client.get(url) as response:
        response.get_data()
        return response


def test_page_loads_only_its_own_assets() -> None:
    client = app_with_api().test_client()
    response = client.get("/docs")
    assert response.status_code == 200 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "<title>RestEngine API documentation</title>" in html
    assert "<script>" not in html, "no inline script: the CSP forbids them"
    assert not re.search(r"(?i)(https?:)?//", html), "no absolute or protocol-relative URL: nothing off the app"
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe" not in csp
    assert response.headers["Cache-Control"] == "no-cache"

    urls = page_urls(html)
    assert f"/docs/assets/swagger-ui-bundle.js?v={ASSET_VERSION}" in urls
    assert "/openapi.json" in urls
    for url in urls:
        assert fetch(client, url).status_code == 200, url


def test_page_title_names_the_service_as_the_openapi_document_does() -> None:
    client = app_with_api(openapi_info={"title": "Shop <API>"}).test_client()
    assert "<title>Shop &lt;API&gt; documentation</title>" in client.get("/docs").get_data(as_text=True)


def test_assets_have_their_types_and_a_long_cache_only_when_versioned() -> None:
    client = app_with_api().test_client()
    expected = {
        "swagger-ui-bundle.js": "text/javascript",
        "restengine-docs.js": "text/javascript",
        "swagger-ui.css": "text/css",
        "index.css": "text/css",
        "favicon-32x32.png": "image/png",
    }
    for name, mimetype in expected.items():
        response = fetch(client, f"/docs/assets/{name}?v={ASSET_VERSION}")
        assert response.status_code == 200 and response.mimetype == mimetype, name
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert fetch(client, "/docs/assets/swagger-ui.css?v=old").headers["Cache-Control"] == "no-cache"
    assert b"SwaggerUIBundle" in fetch(client, "/docs/assets/restengine-docs.js").data


def test_unknown_or_escaping_asset_is_404() -> None:
    client = app_with_api().test_client()
    assert client.get("/docs/assets/nope.js").status_code == 404
    assert client.get("/docs/assets/../../__init__.py").status_code == 404
    assert client.get("/docs/assets/%2e%2e/flask_swagger_ui.py").status_code == 404


def test_docs_path_none_disables_the_page() -> None:
    client = app_with_api(docs_path=None).test_client()
    assert client.get("/docs").status_code == 404
    assert client.get("/docs/assets/swagger-ui.css").status_code == 404
    assert client.get("/openapi.json").status_code == 200


def test_the_page_needs_the_openapi_document() -> None:
    with pytest.raises(ValueError, match="openapi_path"):
        app_with_api(openapi_path=None)
    assert app_with_api(openapi_path=None, docs_path=None).test_client().get("/docs").status_code == 404


def test_docs_path_is_configurable() -> None:
    client = app_with_api(docs_path="/reference").test_client()
    html = client.get("/reference").get_data(as_text=True)
    assert "/reference/assets/swagger-ui-bundle.js" in html
    assert client.get("/docs").status_code == 404


def test_blueprint_mount_serves_the_page_under_its_prefix() -> None:
    app = Flask("legacy")
    bp = Blueprint("rest", __name__)
    mounted(bp)
    app.register_blueprint(bp, url_prefix="/v1")
    client: FlaskClient = app.test_client()
    response = client.get("/v1/docs")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'data-spec-url="/v1/openapi.json"' in html
    assert client.get("/v1/openapi.json").status_code == 200
    for url in page_urls(html):
        assert url.startswith("/v1/"), url
        assert fetch(client, url).status_code == 200, url
