"""Fixtures shared by every test layer.

The database server is the real one RestEngine runs by default (``mongod`` if
on PATH, else SecantusDB), started once per test session as its own process
on a free loopback port, with its data in a temporary directory.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from restengine.ops.dbserver import DatabaseServer
from restengine.ops.processes import free_port, which
from restengine.ops.stack import redis_process
from tests.keys import TEST_SECRET

# Every app and subprocess the tests start signs cursors with this (tests only).
os.environ.setdefault("RESTENGINE_SECRET_KEY", TEST_SECRET)
# The suite tests the API itself with open access; tests of the access check turn it on
# (tests/integration/test_access.py, tests/e2e/test_access_gunicorn.py).
os.environ.setdefault("RESTENGINE_AUTH", "off")
# Likewise every filter operator; the default (no index-less text filters) has its own tests (test_expensive.py).
os.environ.setdefault("RESTENGINE_EXPENSIVE_FILTERS", "*")
# And without rate limits: tests send far more than a client may; the limits have their own tests (test_rate_limits.py).
os.environ.setdefault("RESTENGINE_RATE_LIMIT", "off")
os.environ.setdefault("RESTENGINE_WRITE_RATE_LIMIT", "off")
os.environ.setdefault("RESTENGINE_EXPENSIVE_RATE_LIMIT", "off")
# gunicorn's access log (off by default: nginx logs every request): tests read the worker pids from it.
os.environ.setdefault("RESTENGINE_ACCESS_LOG", "on")


@pytest.fixture(scope="session")
def database_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseServer]:
    server = DatabaseServer(tmp_path_factory.mktemp("dbserver"), free_port(), test_commands=True)
    server.start()
    yield server
    server.stop()


class RedisServer:
    """A real redis-server process for tests, which tests may stop, freeze and start again."""

    def __init__(self, directory: Path) -> None:
        executable = which("redis-server")
        assert executable, "redis-server is not installed (./dev installs it)"
        self.port = free_port()
        self.process = redis_process(executable, self.port, directory, directory)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process.start()
        self.process.wait_ready()

    def stop(self) -> None:
        self.process.stop()

    def flush(self) -> None:
        import redis

        with redis.Redis.from_url(self.url) as client:
            client.flushall()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The shared test redis-server, emptied for this test."""
    redis_server.flush()
    return redis_server.url


@pytest.fixture
def mongodb_uri(database_server: DatabaseServer) -> str:
    """A URI naming a fresh, empty database on the shared server."""
    return f"mongodb://127.0.0.1:{database_server.port}/t_{uuid.uuid4().hex[:12]}?directConnection=true"


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
