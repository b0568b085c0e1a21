"""Liveness and readiness probes for load balancers and orchestrators.

``/healthz`` answers from memory: the process is up and serving. ``/readyz``
pings the database and Redis, each within ``RESTENGINE_READY_TIMEOUT_MS``, and
answers 503 naming every check that failed.
"""

from __future__ import annotations

import pymongo
from flask import Blueprint, Response
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from restengine import db
from restengine.errors import ServiceUnavailable
from restengine.jsonresp import json_response
from restengine.redisconn import RedisConnection

NO_STORE = {"Cache-Control": "no-store"}


def healthz() -> Response:
    return json_response({"status": "ok"}, headers=NO_STORE)


def check_database(timeout: float) -> str:
    """``ok``, or ``error: <exception>`` when a ping does not answer within ``timeout`` seconds."""
    try:
        with pymongo.timeout(timeout):
            db.get_database().command("ping")
    except PyMongoError as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


def check_redis(conn: RedisConnection) -> str:
    """``ok``, ``not configured``, or ``error: <exception>`` (the ping is bounded by the readiness timeout)."""
    if not conn.configured:
        return "not configured"
    try:
        conn.ping()
    except RedisError as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


def blueprint(redis_conn: RedisConnection, *, ready_timeout_ms: int, retry_after: int) -> Blueprint:
    """The ``health`` blueprint: ``/healthz`` and ``/readyz`` for these dependencies."""
    bp = Blueprint("health", __name__)
    bp.add_url_rule("/healthz", "healthz", healthz, methods=["GET"])

    def readyz() -> Response:
        checks = {"database": check_database(ready_timeout_ms / 1000), "redis": check_redis(redis_conn)}
        failed = [name for name, result in checks.items() if result.startswith("error")]
        if failed:
            raise ServiceUnavailable(
                f"not ready: {', '.join(failed)} failed",
                title="Not ready",
                checks=checks,
                headers={"Retry-After": str(retry_after), **NO_STORE},
            )
        return json_response({"status": "ready", "checks": checks}, headers=NO_STORE)

    bp.add_url_rule("/readyz", "readyz", readyz, methods=["GET"])
    return bp
