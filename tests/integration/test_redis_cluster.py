"""``REDIS_URL=redis+cluster://...`` against a real three-master Redis Cluster on loopback.

Three redis-servers with ``--cluster-enabled yes`` are joined by ``redis-cli --cluster create`` (no replicas), on
free ports, and stopped by PID at the end. The cache's scripts must run there (every key of one lookup in one hash
slot), writes must invalidate, rate limits must count in the Cluster, and ``/readyz`` must ping it.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from shutil import which

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

from restengine import ratelimit
from restengine.ops.processes import Managed, free_port
from restengine.ops.stack import redis_process
from tests.integration.api_helpers import legacy_served, patch

HOST = "127.0.0.1"


def cluster_port(taken: list[int]) -> int:
    """A free port whose cluster bus port (``port + 10000``, which must be a TCP port too) is free as well."""
    while True:
        port = free_port()
        if port + 10000 <= 65535 and port not in taken and port_free(port + 10000):
            return port


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


class Cluster:
    """Three cluster-enabled redis-servers, each a process started here, sharing the 16384 slots."""

    def __init__(self, directory: Path) -> None:
        server = which("redis-server")
        assert server and which("redis-cli"), "redis-server and redis-cli are not installed (./dev installs them)"
        self.ports: list[int] = []
        while len(self.ports) < 3:
            self.ports.append(cluster_port(self.ports))
        self.nodes: list[Managed] = []
        for port in self.ports:
            home = directory / str(port)
            home.mkdir()
            node = redis_process(server, port, home, directory)
            node.name, node.log_path = f"redis-cluster-{port}", directory / f"redis-{port}.log"
            node.argv = [*node.argv, "--cluster-enabled", "yes", "--cluster-config-file", str(home / "nodes.conf"),
                         "--cluster-node-timeout", "2000"]  # fmt: skip
            self.nodes.append(node)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"{HOST}:{port}" for port in self.ports)

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.wait_ready()
        created = subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"{HOST}:{port}" for port in self.ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert created.returncode == 0, created.stdout + created.stderr
        deadline = time.monotonic() + 20
        while not all(self._ok(port) for port in self.ports):
            assert time.monotonic() < deadline, "the cluster never reached cluster_state:ok"
            time.sleep(0.1)

    @staticmethod
    def _ok(port: int) -> bool:
        with redis.Redis(port=port) as node:
            return bool(node.cluster("INFO").get("cluster_state") == "ok")

    def client(self) -> RedisCluster:
        return RedisCluster(startup_nodes=[ClusterNode(HOST, port) for port in self.ports])

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    servers = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()


def test_cached_reads_invalidation_rate_limits_and_readiness_on_a_cluster(cluster: Cluster, mongodb_uri: str) -> None:
    with legacy_served(mongodb_uri, cluster.url, RESTENGINE_RATE_LIMIT="10/minute") as app:
        assert app.extensions["restengine.cache"].near is None, "no client tracking through a Cluster"
        client = app.test_client()

        def read(url: str) -> tuple[str, str]:
            response = client.get(url)
            assert response.status_code == 200, response.get_data(as_text=True)
            body = response.get_json()
            return (body["items"][0] if "items" in body else body)["name"], response.headers["X-Cache"]

        assert read("/api/customers/ABC123") == ("Ada", "miss")
        assert read("/api/customers/ABC123") == ("Ada", "hit")
        assert read("/api/customers") == ("Ada", "miss")
        assert read("/api/customers") == ("Ada", "hit")
        assert patch(client, "/api/customers/ABC123", {"name": "Grace"}).status_code == 200
        assert read("/api/customers/ABC123") == ("Grace", "miss")
        assert read("/api/customers") == ("Grace", "miss")
        assert read("/api/customers/ABC123") == ("Grace", "hit")
        assert client.get("/readyz").status_code == 200

        with cluster.client() as rc:
            entries = list(rc.scan_iter("re:{*}:c:customers:*", target_nodes=RedisCluster.ALL_NODES))
            counts = list(rc.scan_iter(f"{ratelimit.KEY_PREFIX}*", target_nodes=RedisCluster.ALL_NODES))
        assert entries and counts, "entries and rate-limit counts are in the Cluster"
        answers = [client.get("/api/customers/ABC123").status_code for _ in range(5)]
        assert answers == [200, 200, 200, 429, 429], "10 reads a minute (7 made above), counted in the Cluster"
