"""Fixtures of the integration tests: the real app on a fresh database of the real server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.integration.api_helpers import api_app


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def app(mongodb_uri: str) -> Iterator[Flask]:
    """The RestEngine app serving the demo and the legacy models, every index built."""
    with api_app(mongodb_uri) as app:
        yield app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
