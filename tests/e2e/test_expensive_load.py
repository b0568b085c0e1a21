"""One client's expensive queries cannot take reads down for everyone (the case of issue 15), through the whole
stack: ``restengine up`` (nginx, two instances of two workers, Redis, the database), bounded in time.

Several clients hammer ``?title__icontains=…&count=exact`` (a scan of every book, a new search each time so
the cache cannot help) while another client reads items by id (each a different one: every read goes to the
database). The expensive clients are hostile (never wait) or polite (wait as Retry-After says), under the
shipped limits. The cheap client sees no error at all; the expensive clients are told their query is the
problem (422 query-too-expensive, 429 too-many-expensive-queries or rate-limited), never a 503.

Its tail latency must stay within 2x of its unloaded p99. That part is asserted on ``mongod`` (used whenever one
is on PATH) and an expected failure on SecantusDB, whose divergence it names: a collection scan walks the
collection under the server's one storage lock and then decodes in Python under its GIL, so every other query
waits while a scan runs (a raw PyMongo ``find_one`` beside one scan: p99 0.8 -> 89 ms)."""

from __future__ import annotations

import http.client
import json
import multiprocessing
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator

import jwt
import pytest

from restengine.ops.processes import which
from tests.e2e.helpers import get
from tests.e2e.upstack import UpStack, start_up, stop_up
from tests.keys import OTHER_SECRET

SECONDS = 10  # of load
BASELINE = 300  # cheap reads with nobody else around
EXPENSIVE_CLIENTS = 4
SCANS_STALL_THE_DATABASE = (
    "SecantusDB divergence: a collection scan holds the storage lock, then the GIL, so every other query "
    "waits while one runs; mongod runs them side by side"
)


# Anonymous clients (the expensive ones) get the shipped limits; the cheap client is a service whose role the
# policy exempts from rate limits, so that its reads measure latency, not its own budget.
POLICY = """
[anonymous]
"*" = ["read"]

[roles.service]
"*" = { actions = ["read"], rate_limit = "off" }
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpStack]:
    where = tmp_path_factory.mktemp("load")
    (where / "policy.toml").write_text(POLICY)
    stack = start_up(
        where,
        RESTENGINE_SEED_BOOKS="10000",
        RESTENGINE_QUERY_TIME_MS="400",
        RESTENGINE_EXPENSIVE_FILTERS="books.title,books.count",
        RESTENGINE_RATE_LIMIT="600/minute",  # the shipped limits (the test suite turns them off)
        RESTENGINE_EXPENSIVE_RATE_LIMIT="30/minute",
        RESTENGINE_AUTH="on",
        RESTENGINE_JWT_SECRET=OTHER_SECRET,
        RESTENGINE_POLICY=str(where / "policy.toml"),
    )
    yield stack
    stop_up(stack)


SERVICE = {
    "Authorization": "Bearer "
    + jwt.encode({"sub": "svc", "roles": ["service"], "exp": int(time.time()) + 3600}, OTHER_SECRET, "HS256")
}


def cheap_reads(port: int, ids: list[str], seconds: float) -> tuple[list[float], Counter[int]]:
    """Item GETs of ``ids`` in turn (each once at most) for ``seconds``: latencies and statuses."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline and n < len(ids):
        started = time.monotonic()
        status = get(port, f"/api/books/{ids[n % len(ids)]}", headers=SERVICE)[0]
        latencies.append(time.monotonic() - started)
        statuses[status] += 1
        n += 1
    return latencies, statuses


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def hammer(port: int, source: str, polite: bool, seconds: float, results: multiprocessing.Queue[Counter[str]]) -> None:
    """:data:`EXPENSIVE_CLIENTS` threads from ``source`` asking for a new index-less search and its count,
    again and again, for ``seconds`` (``polite``: waiting as ``Retry-After`` says after a 429 or 503); what
    they were answered (status and problem type), put in ``results``."""
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def one(client: int) -> None:
        n = 0
        while time.monotonic() < deadline:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
            try:
                conn.request("GET", f"/api/books?title__icontains=zq{client}x{n}&count=exact")
                response = conn.getresponse()
                body = json.loads(response.read() or b"{}")
            finally:
                conn.close()
            kind = body.get("type", "") if response.status >= 400 else ""
            with lock:
                outcomes[f"{response.status} {kind}".strip()] += 1
            n += 1
            if polite and response.status in (429, 503):
                wait = float(response.getheader("Retry-After") or 1)
                time.sleep(min(wait, max(0.0, deadline - time.monotonic())))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(EXPENSIVE_CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put(outcomes)


@pytest.mark.parametrize(("behaviour", "source"), [("hostile", "127.0.0.2"), ("polite", "127.0.0.3")])
def test_expensive_clients_do_not_take_cheap_reads_down(stack: UpStack, behaviour: str, source: str) -> None:
    port = stack.http
    ids: list[str] = []
    cursor = "/api/books?limit=100&fields=id"
    while len(ids) < 3000 and cursor:
        status, _, raw = get(port, cursor, headers=SERVICE)
        assert status == 200, raw
        page = json.loads(raw)
        ids += [item["id"] for item in page["items"]]
        cursor = page["next"] and page["next"].split(str(port), 1)[1]
    offset = 0 if behaviour == "hostile" else 1500  # each run reads items no earlier run cached
    baseline, base_statuses = cheap_reads(port, ids[offset : offset + BASELINE], 60)
    assert set(base_statuses) == {200}

    # The expensive clients run in a process of their own: their threads must not hold up the cheap
    # client's in this one (one GIL), or its latency would measure this test, not the service.
    fork = multiprocessing.get_context("fork")
    results: multiprocessing.Queue[Counter[str]] = fork.Queue()
    hammers = fork.Process(target=hammer, args=(port, source, behaviour == "polite", SECONDS + 1.5, results))
    hammers.start()
    try:
        time.sleep(1.0)  # the expensive load is on before the cheap client starts
        loaded, statuses = cheap_reads(port, ids[offset + BASELINE : offset + 1500], SECONDS)
        expensive = results.get(timeout=60)
    finally:
        hammers.join(30)
        if hammers.is_alive():
            hammers.kill()
            hammers.join()
    summary = (
        f"{behaviour}: cheap p99 {p99(baseline) * 1000:.1f} ms alone, {p99(loaded) * 1000:.1f} ms under load "
        f"({len(baseline)} / {len(loaded)} reads, {dict(statuses)}); expensive outcomes {dict(expensive)}"
    )
    print(summary)
    assert set(statuses) == {200} and len(loaded) > 10, summary
    assert not [k for k in expensive if k.startswith("5")], summary
    assert {k for k in expensive if not k.startswith("200")} <= {
        "422 urn:restengine:problem:query-too-expensive",
        "429 urn:restengine:problem:too-many-expensive-queries",
        "429 urn:restengine:problem:rate-limited",
    }, summary
    assert sum(n for k, n in expensive.items() if not k.startswith("200")) > 0, summary
    if p99(loaded) > 2 * p99(baseline) and not which("mongod"):
        pytest.xfail(f"{SCANS_STALL_THE_DATABASE}: {summary}")
    assert p99(loaded) <= 2 * p99(baseline), summary
