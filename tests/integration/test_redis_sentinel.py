"""``REDIS_URL=redis+sentinel://...`` through a real failover, all on loopback.

Two redis-servers (a master and its replica) and three sentinels watching them are started by the test on free
ports, and stopped by PID at the end. The master is then killed (SIGKILL): the sentinels promote the replica, and
the real app must keep answering (the cache fails open, no 5xx), invalidate what is written during and after the
failover (nothing stale), hit its cache again on the new master, and be ready again.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from shutil import which

import pytest
import redis
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from restengine.ops.processes import Managed, free_port, port_open
from restengine.ops.stack import redis_process
from tests.integration.api_helpers import legacy_served, patch

SERVICE = "mymaster"
HOST = "127.0.0.1"
FAILOVER_WITHIN = 20.0  # seconds the sentinels get to promote the replica


class SentinelSet:
    """A master, its replica and three sentinels (quorum 2) on loopback, each a process started here."""

    def __init__(self, directory: Path) -> None:
        server = which("redis-server")
        assert server, "redis-server is not installed (./dev installs it)"
        self.master_port, self.replica_port = free_port(), free_port()
        self.master = redis_process(server, self.master_port, self._dir(directory, "master"), directory)
        replica = redis_process(server, self.replica_port, self._dir(directory, "replica"), directory)
        replica.name, replica.log_path = "redis-replica", directory / "redis-replica.log"
        replica.argv = [*replica.argv, "--replicaof", HOST, str(self.master_port)]
        self.replica = replica
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinels = [self._sentinel(server, port, directory) for port in self.sentinel_ports]
        self.processes = [self.master, self.replica, *self.sentinels]

    @staticmethod
    def _dir(parent: Path, name: str) -> Path:
        path = parent / name
        path.mkdir()
        return path

    def _sentinel(self, server: str, port: int, directory: Path) -> Managed:
        config = directory / f"sentinel-{port}.conf"  # a sentinel rewrites its file: one each, writable
        config.write_text(
            f"port {port}\nbind {HOST}\ndir {directory}\n"
            f"sentinel monitor {SERVICE} {HOST} {self.master_port} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} 1000\n"
            f"sentinel failover-timeout {SERVICE} 3000\n"
        )
        return Managed(
            name=f"sentinel-{port}",
            argv=[server, str(config), "--sentinel"],
            log_path=directory / f"sentinel-{port}.log",
            ready=lambda: port_open(HOST, port),
        )

    @property
    def url(self) -> str:
        sentinels = ",".join(f"{HOST}:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{sentinels}/{SERVICE}/0"

    def start(self) -> None:
        for process in self.processes:
            process.start()
        for process in self.processes:
            process.wait_ready()
        wait_until(self._settled, 30, "the replica to sync and the sentinels to find the replica and each other")

    def _settled(self) -> bool:
        with redis.Redis(port=self.replica_port) as replica:
            if replica.info("replication").get("master_link_status") != "up":
                return False
        for port in self.sentinel_ports:
            with redis.Redis(port=port) as sentinel:
                if len(sentinel.sentinel_slaves(SERVICE)) != 1 or len(sentinel.sentinel_sentinels(SERVICE)) != 2:
                    return False
        return True

    def master_named(self) -> int | None:
        """The master's port as the first sentinel that answers names it."""
        for port in self.sentinel_ports:
            try:
                with redis.Redis(port=port, socket_timeout=0.5) as sentinel:
                    _, master_port = sentinel.sentinel_get_master_addr_by_name(SERVICE)
                    return int(master_port)
            except redis.RedisError:
                continue
        return None

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


def tracking_clients(port: int) -> int:
    """Connections of the redis-server on ``port`` with client tracking on (the near cache's)."""
    with redis.Redis(port=port) as server:
        return sum("t" in client["flags"] for client in server.client_list())


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"waited {seconds:.0f}s for {what}")


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[SentinelSet]:
    servers = SentinelSet(tmp_path)
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()


class Reader:
    """Reads through the app, remembering every status: none may be a 5xx."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.statuses: list[int] = []

    def get(self, url: str) -> TestResponse:
        response = self.client.get(url)
        self.statuses.append(response.status_code)
        assert response.status_code < 500, response.get_data(as_text=True)
        return response

    def name(self) -> tuple[str, str]:
        """The customer's name and the ``X-Cache`` of the read."""
        response = self.get("/api/customers/ABC123")
        assert response.status_code == 200
        return response.get_json()["name"], response.headers.get("X-Cache", "")

    def write(self, name: str) -> None:
        response = patch(self.client, "/api/customers/ABC123", {"name": name})
        self.statuses.append(response.status_code)
        assert response.status_code == 200, response.get_data(as_text=True)


def test_cached_reads_and_invalidations_survive_a_sentinel_failover(sentinels: SentinelSet, mongodb_uri: str) -> None:
    with legacy_served(mongodb_uri, sentinels.url, RESTENGINE_CACHE_BREAKER_SECONDS="1") as app:
        client = app.test_client()
        reader = Reader(client)
        assert reader.name() == ("Ada", "miss")
        assert reader.name() == ("Ada", "hit")
        assert client.get("/api/customers").headers["X-Cache"] == "miss"
        assert client.get("/api/customers").headers["X-Cache"] == "hit"
        assert client.get("/readyz").status_code == 200
        wait_until(lambda: tracking_clients(sentinels.master_port) == 1, 5, "the near cache to track the master")
        with redis.Redis(port=sentinels.master_port) as master:
            master.wait(1, 2000)  # the replica has every entry and generation before the master dies
        assert sentinels.master.pid is not None
        os.kill(sentinels.master.pid, signal.SIGKILL)

        # While nobody is master: reads answer from the database, and a write is owed to Redis, not lost.
        assert reader.name()[0] == "Ada"
        reader.write("Ada during failover")
        deadline = time.monotonic() + FAILOVER_WITHIN
        while sentinels.master_named() != sentinels.replica_port:
            assert time.monotonic() < deadline, "the sentinels never promoted the replica"
            assert reader.name()[0] == "Ada during failover", "a read after a write must never be stale"
            assert reader.get("/api/customers").status_code == 200
            time.sleep(0.1)

        # The new master: the owed invalidation reached it, reads hit its cache again, and writes invalidate.
        wait_until(lambda: reader.name() == ("Ada during failover", "hit"), 10, "a cached hit on the new master")
        reader.write("Ada after failover")
        assert reader.name() == ("Ada after failover", "miss"), "a write after the failover invalidates"
        assert reader.name() == ("Ada after failover", "hit")
        with redis.Redis(port=sentinels.replica_port) as new_master:
            assert new_master.info("replication")["role"] == "master"
            assert list(new_master.scan_iter("re:{*}:c:customers:*", count=1000)), "entries are on the new master"
        wait_until(lambda: client.get("/readyz").status_code == 200, 10, "/readyz to be ready again")
        # The near cache's tracking connection followed the master (it is opened while requests come).
        wait_until(lambda: reader.name()[0] == "Ada after failover" and tracking_clients(sentinels.replica_port) == 1,
                   10, "the near cache to track the new master")  # fmt: skip
        assert client.get("/readyz").get_json()["checks"]["redis"] == "ok"
        assert all(status < 500 for status in reader.statuses), reader.statuses
