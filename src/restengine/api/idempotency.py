"""``Idempotency-Key`` (IETF httpapi draft) for ``POST`` and ``POST …/_bulk``: a retried request writes nothing twice.

The keys live in the served database (collection :data:`COLLECTION`), so
every worker and instance sees them; a TTL index drops them after
``RESTENGINE_IDEMPOTENCY_TTL_SECONDS`` (24 h by default). A key belongs to
the caller who sent it (its principal), never to anyone else.

A request with a key first **claims** it: a new record in state ``started``
with a lease (the request's deadline plus the write's budget, and a margin).
Then:

* same key, same request, first one finished → its response is replayed
  (status, ``Location``, body; ``Idempotent-Replayed: true``), nothing is written;
* same key, another request (method, path or body differ) → 422;
* same key while the first request runs (its lease is alive) → 409 with ``Retry-After``;
* same key after the first request's instance died (its lease ran out) → this
  request takes the record over and finds out what the first one did. Before
  sending its write the first request recorded the ids it was writing (creates)
  or the state each operation leads to (``_bulk``): if that state is in the
  database the write happened and its response is rebuilt from it; if none of
  it is, it never happened (a partial array insert is removed, as the first
  request would have) and the request runs again.

Only final answers are kept (2xx and 4xx); a 503 releases the key (nothing was
written); a 504 "outcome unknown" keeps it claimed until its lease runs out,
when a retry finds out as above.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import logging
import math
import secrets
import threading
from collections.abc import Callable, Mapping
from typing import Any

import orjson
import pymongo
from flask import Response, request
from pymongo import ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError, PyMongoError

from restengine.api.outcome import Phases
from restengine.errors import Conflict, IdempotencyProblem, OutcomeUnknown, render, to_problem

log = logging.getLogger(__name__)

COLLECTION = "restengine_idempotency"
HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
MAX_STORED_BODY = 8 * 1024 * 1024  # a larger response is rebuilt from what was written when replayed
LEASE_MARGIN_SECONDS = 2.0
KEPT_HEADERS = ("Content-Type", "Location", "ETag")
STARTED, DONE = "started", "done"


def parse_key(value: str | None) -> str | None:
    """The key an ``Idempotency-Key`` header value carries; ``None`` when absent.

    The draft makes it a Structured Field string (``"…"``, RFC 8941); a bare
    token of visible ASCII is accepted too, as many clients send one. Raises a
    400 :class:`IdempotencyProblem` for anything else, or an empty or too long key.
    """
    if value is None:
        return None
    value = value.strip(" \t")
    if len(value) >= 2 and value[0] == value[-1] == '"':
        key, escaped = [], False
        for char in value[1:-1]:
            if escaped:
                if char not in '"\\':
                    raise _malformed()
                key.append(char)
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"' or not " " <= char <= "~":
                raise _malformed()
            else:
                key.append(char)
        if escaped:
            raise _malformed()
        text = "".join(key)
    else:
        text = value
        if any(not "!" <= char <= "~" or char in '"\\' for char in text):
            raise _malformed()
    if not 1 <= len(text) <= MAX_KEY_LENGTH:
        raise _malformed()
    return text


def _malformed() -> IdempotencyProblem:
    return IdempotencyProblem(
        f'{HEADER} must be a string of 1 to {MAX_KEY_LENGTH} printable ASCII characters (e.g. "<a UUID>").',
        status=400,
    )


def fingerprint(method: str, path: str, body: Any) -> str:
    """What makes two requests "the same request": method, path and the JSON body (key order aside)."""
    canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(method.encode() + b"\n" + path.encode() + b"\n" + canonical).hexdigest()


@dataclasses.dataclass(frozen=True)
class Stored:
    """A finished request's response, as kept: replayed for a retry; ``body`` ``None`` when too large to keep."""

    status: int
    headers: dict[str, str]
    body: bytes | None
    record: Mapping[str, Any]


@dataclasses.dataclass
class Claim:
    """This request holds the key (``owner`` proves it); ``earlier`` is the abandoned attempt's record, if any."""

    record_id: str
    owner: str
    earlier: Mapping[str, Any] | None = None


def _now() -> datetime.datetime:
    # BSON dates are UTC milliseconds; PyMongo returns them naive.
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


class IdempotencyStore:
    """The keys, in ``collection()``; ``lease`` (seconds) is how long a claim holds without news."""

    def __init__(self, collection: Callable[[], Collection[Any]], *, ttl_seconds: int, lease: float) -> None:
        self._collection = collection
        self.ttl = datetime.timedelta(seconds=ttl_seconds)
        self.lease = datetime.timedelta(seconds=lease + LEASE_MARGIN_SECONDS)
        self._indexed = False
        self._lock = threading.Lock()

    def _records(self) -> Collection[Any]:
        collection = self._collection()
        if not self._indexed:
            with self._lock:
                if not self._indexed:
                    collection.create_index("expires_at", expireAfterSeconds=0, name="expires_at_ttl")
                    self._indexed = True
        return collection

    def claim(self, caller: str, key: str, print_: str) -> Claim | Stored:
        """Claim ``key`` for ``caller``'s request with fingerprint ``print_``; or the finished response to replay.

        Raises :class:`IdempotencyProblem`: 422 (the key was used for another
        request), 409 (its request is still running).
        """
        records = self._records()
        record_id = hashlib.sha256(f"{caller}\0{key}".encode()).hexdigest()
        owner = secrets.token_hex(12)
        for _ in range(4):
            now = _now()
            try:
                records.insert_one(
                    {
                        "_id": record_id,
                        "fingerprint": print_,
                        "state": STARTED,
                        "owner": owner,
                        "lease_until": now + self.lease,
                        "expires_at": now + self.ttl,
                    }
                )
                return Claim(record_id, owner)
            except DuplicateKeyError:
                pass
            record = records.find_one({"_id": record_id})
            if record is None:
                continue  # expired meanwhile
            if record["expires_at"] <= now:  # past its time, not yet removed by the TTL monitor
                records.delete_one({"_id": record_id, "owner": record["owner"], "expires_at": record["expires_at"]})
                continue
            if record["fingerprint"] != print_:
                raise IdempotencyProblem(
                    f"This {HEADER} was used for a different request (another method, path or body). "
                    "Use a new key for a new request.",
                    status=422,
                )
            if record["state"] == DONE:
                response = record["response"]
                body = None if response.get("body") is None else bytes(response["body"])
                return Stored(response["status"], dict(response["headers"]), body, record)
            if record["lease_until"] > now:
                wait = math.ceil((record["lease_until"] - now).total_seconds())
                raise IdempotencyProblem(
                    f"A request with this {HEADER} is still in progress; retry after it has finished.",
                    status=409,
                    headers={"Retry-After": str(max(wait, 1))},
                )
            taken = records.find_one_and_update(
                {"_id": record_id, "owner": record["owner"], "state": STARTED},
                {"$set": {"owner": owner, "lease_until": now + self.lease}},
                return_document=ReturnDocument.AFTER,
            )
            if taken is not None:
                log.warning("taking over an abandoned request's %s (its lease ran out)", HEADER)
                return Claim(record_id, owner, earlier=record)
        raise IdempotencyProblem(
            f"Another request with this {HEADER} is being handled; retry.", status=409, headers={"Retry-After": "1"}
        )

    def note(self, claim: Claim, **facts: Any) -> None:
        """Record what the request is about to write (``ids``, ``outcome``), and renew the lease for the write.

        Raises a 409 :class:`IdempotencyProblem` if another request took the key over meanwhile.
        """
        result = self._records().update_one(
            {"_id": claim.record_id, "owner": claim.owner},
            {"$set": {**facts, "lease_until": _now() + self.lease}},
        )
        if not result.matched_count:
            raise IdempotencyProblem(
                f"Another request took over this {HEADER}; retry to get its answer.",
                status=409,
                headers={"Retry-After": "1"},
            )

    def finish(self, claim: Claim, status: int, headers: Mapping[str, str], body: bytes) -> None:
        """Keep the final response for replays. Never raises: the answer is already decided."""
        kept = {name: headers[name] for name in KEPT_HEADERS if name in headers}
        response = {"status": status, "headers": kept, "body": body if len(body) <= MAX_STORED_BODY else None}
        self._quietly(
            "finish",
            lambda records: records.update_one(
                {"_id": claim.record_id, "owner": claim.owner}, {"$set": {"state": DONE, "response": response}}
            ),
        )

    def release(self, claim: Claim) -> None:
        """Forget the claim: nothing was written, a retry runs afresh. Never raises."""
        self._quietly("release", lambda records: records.delete_one({"_id": claim.record_id, "owner": claim.owner}))

    def hold(self, claim: Claim) -> None:
        """Keep the claim for a lease after an unknown outcome: a retry then finds out what happened."""
        self._quietly(
            "hold",
            lambda records: records.update_one(
                {"_id": claim.record_id, "owner": claim.owner}, {"$set": {"lease_until": _now() + self.lease}}
            ),
        )

    def _quietly(self, what: str, write: Callable[[Collection[Any]], Any]) -> None:
        try:
            write(self._records())
        except PyMongoError as exc:
            # The record keeps its lease: a retry after it finds out from the data what happened.
            log.warning("could not %s an %s record: %s", what, HEADER, type(exc).__name__)


Note = Callable[[Callable[[], dict[str, Any]]], None]
"""Records what a write is about to do (the facts the callable gives) under its request's ``Idempotency-Key``;
without one, does nothing (and does not call it)."""


def idempotent(
    store: IdempotencyStore | None,
    caller: str,
    body: Any,
    phases: Phases,
    run: Callable[[Note], Response],
    recover: Callable[..., Response | None],
    replay_timeout: float,
) -> Response:
    """``run`` the request's write, under its ``Idempotency-Key`` when it has one (and ``store`` is set).

    ``caller`` names who sends it (keys are per caller). ``run`` calls its
    ``note`` with what it is about to write, before sending it. ``recover``
    finds out from the data what an abandoned attempt (its record given) did:
    its response if its write happened, ``None`` if it did not (a partial
    write undone, unless called with ``replaying=True``).
    """
    key = parse_key(request.headers.get(HEADER))
    if key is None or store is None:
        return run(lambda facts: None)
    with phases.before():
        claimed = store.claim(caller, key, fingerprint(request.method, request.path, body))
    if isinstance(claimed, Stored):
        return _replay(claimed, recover, replay_timeout)
    claim = claimed

    def note(facts: Callable[[], dict[str, Any]]) -> None:
        with phases.before():
            store.note(claim, **facts())

    try:
        response = None
        if claim.earlier is not None:
            with phases.before():
                response = recover(claim.earlier)
        if response is None:
            response = run(note)
    except OutcomeUnknown:
        store.hold(claim)
        raise
    except Exception as exc:
        problem = to_problem(exc)
        if problem is None or problem.status >= 500:
            store.release(claim)
            raise
        response = render(exc)  # a final answer too: replayed like a success
    store.finish(claim, response.status_code, dict(response.headers), response.get_data())
    return response


def _replay(stored: Stored, recover: Callable[..., Response | None], timeout: float) -> Response:
    if stored.body is None:  # too large to keep (an array POST): rebuilt from what was written
        with pymongo.timeout(timeout):
            rebuilt = recover(stored.record, replaying=True)
        if rebuilt is None:
            raise Conflict(
                "This request was done; its response was too large to keep and its items changed since: read them."
            )
        response = rebuilt
    else:
        response = Response(stored.body, status=stored.status)
        response.headers.update(stored.headers)
    response.headers[REPLAYED] = "true"
    return response
