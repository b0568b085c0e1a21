"""Liveness and readiness probes for load balancers and orchestrators.

``/healthz`` answers from memory: the process is up and serving. ``/readyz``
pings the database and Redis, each within ``RESTENGINE_READY_TIMEOUT_MS``, and
answers 503 naming every check that failed.
"""

from __future__ import annotations

from typing import Any

import pymongo
from flask import Blueprint, Response, current_app
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from restengine import db
from restengine.errors import ServiceUnavailable, retry_after_header
from restengine.jsonresp import json_response
from restengine.redisconn import EXTENSION as REDIS_EXTENSION
from restengine.redisconn import RedisConnection

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return json_response({"status": "ok"}, headers={"Cache-Control": "no-store"})


def _check_database(timeout: float) -> str:
    try:
        with pymongo.timeout(timeout):
            db.get_database().command("ping")
    except PyMongoError as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


def _check_redis(conn: RedisConnection) -> str:
    if not conn.configured:
        return "not configured"
    try:
        conn.client().ping()
    except RedisError as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


def readiness() -> dict[str, str]:
    """Run every readiness check; returns ``{check: "ok" | "not configured" | "error: ..."}``."""
    settings = current_app.extensions["restengine.settings"]
    return {
        "database": _check_database(settings.ready_timeout_ms / 1000),
        "redis": _check_redis(current_app.extensions[REDIS_EXTENSION]),
    }


@bp.get("/readyz")
def readyz() -> Response:
    checks: dict[str, Any] = readiness()
    failed = [name for name, result in checks.items() if result.startswith("error")]
    if failed:
        raise ServiceUnavailable(
            f"not ready: {', '.join(failed)} failed",
            title="Not ready",
            checks=checks,
            headers={"Retry-After": retry_after_header(), "Cache-Control": "no-store"},
        )
    return json_response({"status": "ready", "checks": checks}, headers={"Cache-Control": "no-store"})
