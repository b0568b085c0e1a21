"""The process's Redis client, built lazily from ``REDIS_URL`` with short timeouts.

Redis is optional: without ``REDIS_URL`` there is no client (the response
cache says at start-up what it does instead). The client is made on first
use, so nothing connects before gunicorn forks; redis-py's pool also notices
a fork and reconnects in the child.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import redis

from restengine.config import Settings

if TYPE_CHECKING:
    from flask import Flask

EXTENSION = "restengine.redis"


class RedisConnection:
    """Holds the lazily built clients for one app: one for requests, one for readiness checks."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.redis_url
        self.timeout = settings.redis_timeout_ms / 1000
        self.ready_timeout = settings.ready_timeout_ms / 1000
        self._client: redis.Redis | None = None
        self._probe: redis.Redis | None = None

    @property
    def configured(self) -> bool:
        return self.url is not None

    def _build(self, timeout: float) -> redis.Redis:
        if self.url is None:
            raise RuntimeError("REDIS_URL is not set")
        return redis.Redis.from_url(
            self.url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=30
        )

    def client(self) -> redis.Redis:
        """The client requests use (``RESTENGINE_REDIS_TIMEOUT_MS``); raises ``RuntimeError`` without ``REDIS_URL``."""
        if self._client is None:
            self._client = self._build(self.timeout)
        return self._client

    def ping(self) -> None:
        """Ping Redis within ``RESTENGINE_READY_TIMEOUT_MS`` (its own client, so a probe never holds up requests).

        Raises ``redis.RedisError`` when Redis does not answer in time, ``RuntimeError`` without ``REDIS_URL``.
        """
        if self._probe is None:
            self._probe = self._build(self.ready_timeout)
        self._probe.ping()


def init_app(app: Flask, settings: Settings) -> RedisConnection:
    conn = RedisConnection(settings)
    app.extensions[EXTENSION] = conn
    return conn
