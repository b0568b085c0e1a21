"""One run of ``bench.run``: the services every configuration shares, the seeded data the
workload reads, the database restored before each workload, and the wall time per phase."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from bench.configs import deep_page
from bench.procs import FreshDatabase, Services, start_services
from restengine.api.pagination import CursorCodec
from restengine.auth.keys import COLLECTION as KEYS
from restengine.auth.keys import KeyStore
from restengine.ops.processes import Managed, free_port


class Phases:
    """Wall seconds per phase of the whole run: the run has a time budget, and the summary printed
    at the end shows which phase to cut when it is exceeded."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = collections.defaultdict(float)

    @contextlib.contextmanager
    def time(self, name: str) -> Iterator[None]:
        """Add the wall time of the block to phase ``name``."""
        start = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] += time.monotonic() - start

    def summary(self, total: float) -> str:
        """The phases, longest first, and the rest of ``total`` seconds."""
        spent = ", ".join(f"{k} {v:.0f} s" for k, v in sorted(self.seconds.items(), key=lambda kv: -kv[1]))
        return f"time: {spent}, other {total - sum(self.seconds.values()):.0f} s; {total:.0f} s in all"


@dataclasses.dataclass(frozen=True)
class Data:
    """The files bench/wrk/workload.lua reads ids from, one per line."""

    ids: Path  # 1,000 book ids
    authors: Path  # every author's id
    one: Path  # a single dummy id: the deep pages' paths take none
    writer_key: str = ""  # an API key with the admin role: RestEngine lets only admins write by default


@dataclasses.dataclass
class Session:
    """What every configuration of one run measures on; made by ``open_session``."""

    tmp: Path  # logs go to tmp/log-<configuration>[-<series>]
    env: dict[str, str]  # the environment of every app under test
    data: Data
    deep_cursor: str  # the cursor a client holds after walking to the deep page
    database: FreshDatabase
    services: Services
    phases: Phases
    runs: Iterator[int] = dataclasses.field(default_factory=itertools.count)

    @property
    def infra(self) -> dict[str, Managed]:
        """The shared processes whose CPU time each run reports, by name: ``db`` (when running), ``redis``."""
        database = self.database.process
        return {**({"db": database} if database is not None else {}), "redis": self.services.redis}

    def nonce(self) -> int:
        """0-999, a new one for every wrk run: each run creates ISBNs in its own range."""
        return next(self.runs) % 1000


@contextlib.contextmanager
def open_session(tmp: Path, books: int, phases: Phases) -> Iterator[Session]:
    """Start the database and Redis in ``tmp``, seed ``books`` demo books and keep them as the
    database's template; kill both on exit. The setup's wall time counts as phase ``prepare``."""
    database = FreshDatabase(tmp, free_port())
    services: Services | None = None
    try:
        with phases.time("prepare"):
            database.start()
            services = start_services(database.server.uri, books, tmp, tmp)
            env = services.env(workers=2, threads=8, RESTENGINE_PROC_NAME="bench")
            data, cursor = _write_data(database.server.uri, tmp, books, services.secret_key)
            database.seal()
        yield Session(tmp, env, data, cursor, database, services, phases)
    finally:
        database.close()
        if services is not None:
            services.stop()


def _write_data(uri: str, tmp: Path, books: int, secret_key: str) -> tuple[Data, str]:
    """Write the workload's id files from the seeded database; them, and the deep page's cursor."""
    client: MongoClient[dict[str, Any]] = MongoClient(uri)
    with client:
        db = client.get_default_database()
        ids = [str(d["_id"]) for d in db.books.find({}, {"_id": 1}).limit(1000)]
        authors = [str(d["_id"]) for d in db.author.find({}, {"_id": 1})]
        # The cursor a client holds after walking to the deep page (page 500 of the full data set).
        before_deep = db.books.find({}, {"_id": 1}).sort("_id", 1).skip((deep_page(books) - 1) * 20 - 1)
        last = before_deep.limit(1).next()["_id"]
        # Writes need the admin role (the default policy): the workload's POSTs carry this key, as a client's
        # would. The peers have no access check and ignore the header.
        writer = KeyStore(lambda: db[KEYS]).create("admin", name="bench writer")[1]
    cursor = CursorCodec(secret_key.encode(), "books").encode([("_id", 1)], [last])
    data = Data(ids=tmp / "ids.txt", authors=tmp / "authors.txt", one=tmp / "one.txt", writer_key=writer)
    data.ids.write_text("\n".join(ids) + "\n")
    data.authors.write_text("\n".join(authors) + "\n")
    data.one.write_text("x\n")
    return data, cursor
