from __future__ import annotations

from pathlib import Path

from pymongo import MongoClient

from restengine.ops.dbserver import DatabaseServer
from restengine.ops.processes import free_port, port_open


def test_embedded_server_keeps_data_across_restarts(tmp_path: Path) -> None:
    port = free_port()
    with DatabaseServer(tmp_path, port) as server:
        assert server.process is not None, "it started its own process"
        with MongoClient(server.uri) as client:
            client.get_default_database().things.insert_one({"_id": 1, "kept": True})
    assert not port_open("127.0.0.1", port)
    with DatabaseServer(tmp_path, port) as server, MongoClient(server.uri) as client:
        assert client.get_default_database().things.find_one({"_id": 1}) == {"_id": 1, "kept": True}
    assert not port_open("127.0.0.1", port)


def test_reuses_a_server_already_listening(database_server: DatabaseServer, tmp_path: Path) -> None:
    other = DatabaseServer(tmp_path, database_server.port)
    other.start()
    assert other.process is None, "did not start a second server on a busy port"
    other.stop()
    assert port_open("127.0.0.1", database_server.port), "stop() left the pre-existing server alone"
