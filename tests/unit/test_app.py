from __future__ import annotations

import time
from collections.abc import Iterator

import mongoengine
import pytest
from flask import Flask
from flask.testing import FlaskClient
from mongoengine.errors import OperationError
from pymongo.errors import NetworkTimeout

from restengine import create_app, db
from restengine.ops.processes import free_port

CLOSED = f"mongodb://127.0.0.1:{free_port()}/nowhere?directConnection=true"


@pytest.fixture
def app() -> Iterator[Flask]:
    app = create_app({"MONGODB_URI": CLOSED, "RESTENGINE_DB_TIMEOUT_MS": 300, "RESTENGINE_READY_TIMEOUT_MS": 100})

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("secret internals")

    @app.get("/wrapped-timeout")
    def wrapped_timeout() -> str:
        try:
            raise NetworkTimeout("timed out")
        except NetworkTimeout as exc:
            raise OperationError("Could not save document") from exc

    yield app
    db.close_all()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def test_create_app_does_no_database_io(app: Flask, client: FlaskClient) -> None:
    assert "default" not in mongoengine.connection._connections, "no client is built by create_app"
    assert client.get("/healthz").status_code == 200
    assert "default" not in mongoengine.connection._connections, "/healthz does no I/O"


def test_config_override_wins() -> None:
    app = create_app({"RESTENGINE_THREADS": 3, "MONGODB_URI": CLOSED})
    assert app.extensions["restengine.settings"].threads == 3
    db.close_all()


def test_readyz_names_the_failed_check(client: FlaskClient) -> None:
    started = time.monotonic()
    response = client.get("/readyz")
    assert time.monotonic() - started < 3, "bounded by the readiness budget, never a hang"
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert "database" in body["detail"]
    assert body["checks"]["database"].startswith("error")
    assert body["checks"]["redis"] == "not configured"
    assert response.headers["Retry-After"] == "2"


def test_not_found_is_problem_json(client: FlaskClient) -> None:
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["title"] == "Not Found"


def test_method_not_allowed_names_allowed_methods(client: FlaskClient) -> None:
    response = client.post("/healthz")
    assert response.status_code == 405
    assert response.mimetype == "application/problem+json"
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "HEAD"}


def test_unexpected_error_is_a_bare_500(client: FlaskClient) -> None:
    response = client.get("/boom")
    assert response.status_code == 500
    assert response.mimetype == "application/problem+json"
    assert "secret" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)


def test_a_wrapped_database_timeout_is_a_503(client: FlaskClient) -> None:
    response = client.get("/wrapped-timeout")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "2"
    assert response.get_json()["title"] == "Database unavailable"


def test_request_id_is_echoed_or_generated(client: FlaskClient) -> None:
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    generated = client.get("/healthz").headers["X-Request-ID"]
    assert len(generated) == 32
    hostile = client.get("/healthz", headers={"X-Request-ID": 'a\tb"c' * 3}).headers["X-Request-ID"]
    assert hostile != 'a\tb"c' * 3


def test_no_proxy_headers_are_trusted_by_default(client: FlaskClient) -> None:
    links = client.get("/", headers={"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}).get_json()
    assert links["links"]["health"] == "http://localhost/healthz"


def test_proxy_fix_trusts_exactly_the_configured_hops() -> None:
    app = create_app({"MONGODB_URI": CLOSED, "RESTENGINE_PROXY_COUNT": 1})

    @app.get("/whoami")
    def whoami() -> dict[str, str]:
        from flask import request

        return {"addr": request.remote_addr or ""}

    client = app.test_client()
    headers = {"X-Forwarded-Host": "api.example", "X-Forwarded-Proto": "https", "X-Forwarded-For": "6.6.6.6, 10.0.0.7"}
    assert client.get("/", headers=headers).get_json()["links"]["health"] == "https://api.example/healthz"
    assert client.get("/whoami", headers=headers).get_json()["addr"] == "10.0.0.7", "only the last hop is trusted"
    db.close_all()


def test_the_pipeline_is_metrics_admission_proxy_fix_rate_limits_cache_hits_then_flask() -> None:
    from werkzeug.middleware.proxy_fix import ProxyFix

    from restengine.admission import Admission
    from restengine.api.caching import CacheHits
    from restengine.metrics import Requests
    from restengine.ratelimit import RateLimits
    from restengine.timing import ServerTiming

    app = create_app({"MONGODB_URI": CLOSED, "RESTENGINE_PROXY_COUNT": 1, "RESTENGINE_RATE_LIMIT": "10/second"})
    measured = app.wsgi_app
    assert isinstance(measured, Requests), "every request is measured, a refusal included"
    outer = measured.wsgi_app
    assert isinstance(outer, Admission), "a request that waited too long is refused before any work"
    proxy = outer.wsgi_app
    assert isinstance(proxy, ProxyFix) and proxy.x_for == 1
    timed = proxy.app
    assert isinstance(timed, ServerTiming), "the API's answers say where their time went"
    assert isinstance(timed.wsgi_app, RateLimits), "counted once the client's address is known"
    assert isinstance(timed.wsgi_app.wsgi_app, CacheHits), "fresh cache hits are answered after the checks"
    assert timed.wsgi_app.wsgi_app.wsgi_app == Flask.wsgi_app.__get__(app), "then Flask itself"
    bare = create_app(
        {"MONGODB_URI": CLOSED, "RESTENGINE_QUEUE_BUDGET_MS": 0, "RESTENGINE_RATE_LIMIT": "off",
         "RESTENGINE_WRITE_RATE_LIMIT": "off", "RESTENGINE_METRICS": "off",
         "RESTENGINE_SERVER_TIMING": "off"}
    )  # fmt: skip
    assert isinstance(bare.wsgi_app, CacheHits), "no metrics, budget, proxy, timing or limit: none of their layers"
    db.close_all()
