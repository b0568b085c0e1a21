"""The process's Redis client, built lazily from ``REDIS_URL`` with short timeouts.

Redis is optional: without ``REDIS_URL`` there is no client and RestEngine
runs with per-process state only (a warning says so at start-up). The client
is made on first use, so nothing connects before gunicorn forks; redis-py's
pool also notices a fork and reconnects in the child.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import redis

from restengine.config import Settings

if TYPE_CHECKING:
    from flask import Flask

EXTENSION = "restengine.redis"
log = logging.getLogger(__name__)


class RedisConnection:
    """Holds the lazily built client for one app."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.redis_url
        self.timeout = settings.redis_timeout_ms / 1000
        self._client: redis.Redis | None = None

    @property
    def configured(self) -> bool:
        return self.url is not None

    def client(self) -> redis.Redis:
        """The client; raises ``RuntimeError`` when no ``REDIS_URL`` is set."""
        if self.url is None:
            raise RuntimeError("REDIS_URL is not set")
        if self._client is None:
            self._client = redis.Redis.from_url(
                self.url,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
                health_check_interval=30,
            )
        return self._client


def init_app(app: Flask, settings: Settings) -> RedisConnection:
    conn = RedisConnection(settings)
    app.extensions[EXTENSION] = conn
    if not conn.configured:
        log.warning(
            "REDIS_URL is not set: caches and limits are per worker process, so workers and instances do not share them"
        )
    return conn
