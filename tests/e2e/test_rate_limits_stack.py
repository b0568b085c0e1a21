"""Rate limits across a deployment: ``restengine up`` (nginx -> two gunicorn instances of two workers each ->
the database), one Redis counting for all of them. A caller gets exactly its budget whichever process answers;
anonymous callers are told apart by their address as nginx saw it; a Redis outage lets traffic through."""

from __future__ import annotations

import http.client
import os
import re
import signal
import threading
import time
from collections.abc import Iterator

import jwt
import pytest

from tests.e2e.helpers import pid_alive, wait_for
from tests.e2e.upstack import UpStack, start_up, stop_up
from tests.keys import OTHER_SECRET

LIMIT = 30
ITEM = "/api/author?limit=1"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpStack]:
    stack = start_up(
        tmp_path_factory.mktemp("limits"),
        RESTENGINE_RATE_LIMIT=f"{LIMIT}/minute",
        RESTENGINE_WRITE_RATE_LIMIT="off",
        RESTENGINE_AUTH="on",
        RESTENGINE_JWT_SECRET=OTHER_SECRET,
    )
    yield stack
    stop_up(stack)


def send(
    port: int, path: str, *, headers: dict[str, str] | None = None, source: str = "127.0.0.1"
) -> tuple[int, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


def bearer(sub: str) -> dict[str, str]:
    payload = {"sub": sub, "roles": [], "exp": int(time.time()) + 600}
    return {"Authorization": f"Bearer {jwt.encode(payload, OTHER_SECRET, algorithm='HS256')}"}


def test_a_caller_gets_exactly_its_budget_whichever_instance_and_worker_answers(stack: UpStack) -> None:
    instances: list[int] = stack.ports["instances"]  # type: ignore[assignment]
    who = bearer("spread")
    host = {"Host": "api.example"}
    # Straight to each instance in turn, from parallel clients: four worker processes, one count.
    results: list[tuple[int, dict[str, str]]] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        for n in range(10):
            answer = send(instances[(index + n) % 2], ITEM, headers={**who, **host})
            with lock:
                results.append(answer)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    statuses = [status for status, _ in results]
    assert len(statuses) == 40
    assert statuses.count(200) == LIMIT, statuses
    assert statuses.count(429) == 40 - LIMIT
    for status, headers in results:
        assert headers["ratelimit-policy"] == f'"read";q={LIMIT};w=60'
        assert re.fullmatch(r'"read";r=\d+;t=\d+', headers["ratelimit"])
        if status == 429:
            assert headers["content-type"] == "application/problem+json"
            assert 1 <= int(headers["retry-after"]) <= 60
            assert headers["ratelimit"].startswith('"read";r=0;')
    # Through nginx too: the same caller, the same spent budget.
    assert send(stack.http, ITEM, headers=who)[0] == 429
    assert send(stack.http, ITEM, headers=bearer("someone else"))[0] == 200


def test_anonymous_callers_are_counted_by_the_address_nginx_saw(stack: UpStack) -> None:
    first = [send(stack.http, ITEM, source="127.0.0.2")[0] for _ in range(LIMIT + 2)]
    assert first.count(200) == LIMIT and first[-2:] == [429, 429]
    # A header the client sets does not make it someone else: nginx appends the address it saw.
    spoofed = send(stack.http, ITEM, source="127.0.0.2", headers={"X-Forwarded-For": "203.0.113.9"})
    assert spoofed[0] == 429
    other = send(stack.http, ITEM, source="127.0.0.3")
    assert other[0] == 200 and other[1]["ratelimit"].startswith(f'"read";r={LIMIT - 1};')


def test_a_redis_outage_lets_traffic_through_and_counting_resumes(stack: UpStack) -> None:
    redis_pid = stack.pids()["redis"]
    statuses: list[int] = []
    limited: list[bool] = []
    os.kill(redis_pid, signal.SIGSTOP)  # every call to Redis times out
    try:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            status, headers = send(stack.http, ITEM, source="127.0.0.4")
            statuses.append(status)
            limited.append("ratelimit" in headers)
    finally:
        os.kill(redis_pid, signal.SIGCONT)
    assert len(statuses) > LIMIT + 5, "more than the budget was asked for while Redis was frozen"
    assert set(statuses) == {200}, statuses
    assert not any(limited[len(limited) // 2 :]), "unlimited (and saying nothing of a limit) while Redis is away"
    # Redis back: counted again within the limiter's retry interval.
    wait_for(lambda: "ratelimit" in send(stack.http, ITEM, source="127.0.0.5")[1], 15, "counting to resume")
    assert pid_alive(redis_pid)
