"""API keys: made, listed and revoked by ``restengine keys``; verified per request by :class:`KeyStore`.

A key reads ``rek_<id>_<secret>``: ``<id>`` is 16 hex characters (``secrets.token_hex(8)``) and names the key
in listings, logs and ``revoke``; ``<secret>`` is ``secrets.token_urlsafe(32)`` (256 random bits). Clients send
it as ``Authorization: Bearer <key>``; the ``rek_`` prefix (:func:`looks_like_key`) tells it from a JWT.

The keys live in one MongoDB collection (:data:`COLLECTION`, in the app's database), so every worker and every
instance sees the same keys. A stored key holds ``_id`` (the id), ``hash`` (the SHA-256 hex digest of the
secret), ``role``, ``subject``, ``name``, ``created`` and, once revoked, ``revoked`` (UTC datetimes). The plain
key is never stored: it is returned once by :meth:`KeyStore.create` and cannot be recovered.

A fast, unsalted hash is the right choice here, unlike for passwords: the secret is 256 bits from
``secrets``, so there is no dictionary to try and no shared value a salt would hide, and a slow hash would
only cost every request CPU time. Digests are compared with :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import builtins
import collections
import dataclasses
import datetime as dt
import hashlib
import hmac
import re
import secrets
import threading
import time
import types
from collections.abc import Callable, Mapping
from typing import Any

from pymongo.collection import Collection

from restengine.auth.principal import InvalidCredentials, Principal

COLLECTION = "restengine_api_keys"
"""The default name of the keys' collection, in the app's database."""

PREFIX = "rek_"
"""What every API key starts with."""

INVALID = "invalid API key"
"""The one message for every refused key: malformed, unknown, revoked or with a wrong secret."""

DEFAULT_CACHE_SECONDS = 10.0
DEFAULT_CACHE_ENTRIES = 10_000

_KEY = re.compile(r"rek_([0-9a-f]{16})_([A-Za-z0-9_-]{32,128})")
_ROLE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_MAX_TEXT = 256


def looks_like_key(token: str) -> bool:
    """Whether a bearer token is meant as an API key (it has the prefix), not whether it is a valid one."""
    return token.startswith(PREFIX)


def check_role(role: str) -> str:
    """Return ``role`` if it is a plain identifier (``[A-Za-z0-9_.-]{1,64}``); raise ``ValueError`` otherwise."""
    if not _ROLE.fullmatch(role):
        raise ValueError(f"a role is 1 to 64 letters, digits, '_', '.' or '-', not {role!r}")
    return role


def check_text(value: str, what: str) -> str:
    """Return ``value`` (a subject or a name) if it is 1 to 256 printable characters; raise ``ValueError``."""
    if not value or len(value) > _MAX_TEXT or not value.isprintable():
        raise ValueError(f"a {what} is 1 to {_MAX_TEXT} printable characters")
    return value


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def _utc(value: Any) -> dt.datetime | None:
    """A stored datetime as an aware UTC one (PyMongo returns naive UTC unless the client is ``tz_aware``)."""
    if not isinstance(value, dt.datetime):
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


@dataclasses.dataclass(frozen=True)
class KeyInfo:
    """What may be shown about a key: never its secret nor its hash."""

    id: str
    role: str
    subject: str
    name: str | None
    created: dt.datetime
    revoked: dt.datetime | None = None

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> KeyInfo:
        created = _utc(doc.get("created"))
        return cls(
            id=str(doc["_id"]),
            role=str(doc["role"]),
            subject=str(doc.get("subject") or f"key:{doc['_id']}"),
            name=doc.get("name"),
            created=created or dt.datetime.fromtimestamp(0, dt.UTC),
            revoked=_utc(doc.get("revoked")),
        )


@dataclasses.dataclass(frozen=True)
class _Verified:
    digest: str
    principal: Principal
    expires: float


class KeyStore:
    """Create, list, revoke and verify API keys stored (hashed) in a MongoDB collection.

    ``collection`` is called for every database operation and returns the PyMongo collection, so building a
    store opens nothing: make it before gunicorn forks (the lead passes
    ``lambda: restengine.db.get_database()[COLLECTION]``). Database errors (timeouts included) propagate
    unchanged; the caller maps them (the HTTP layer answers 503).

    Successful verifications are cached in this process for ``cache_seconds`` (at most ``max_entries`` keys,
    the oldest dropped first; 0 disables the cache), so a busy key costs no database round trip per request.
    Hence a revocation takes effect at once in the store that revoked the key, and within ``cache_seconds``
    in every other process and instance. Failed lookups are not cached, so a key created elsewhere works at
    once; the price is that every request with a well-formed but bogus key costs one ``find_one`` by ``_id``,
    which the request's database deadline bounds. ``clock`` (monotonic seconds) is for tests.

    Thread-safe: one store serves every thread of a worker.
    """

    def __init__(
        self,
        collection: Callable[[], Collection[Any]],
        *,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
        max_entries: int = DEFAULT_CACHE_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if cache_seconds < 0 or max_entries < 1:
            raise ValueError("cache_seconds must be >= 0 and max_entries >= 1")
        self._collection = collection
        self._cache_seconds = cache_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._cache: collections.OrderedDict[str, _Verified] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._revocations = 0  # a verification that overlapped a revocation is not cached

    def create(self, role: str, *, subject: str | None = None, name: str | None = None) -> tuple[KeyInfo, str]:
        """Store a new key and return its description and the plain key, which exists nowhere else.

        ``subject`` defaults to ``key:<id>``. Raises ``ValueError`` for a role that is not a plain identifier
        (:func:`check_role`) or a subject or name that is empty, too long or not printable (:func:`check_text`);
        database errors propagate. The 64-bit id is random: a collision (a ``DuplicateKeyError``) is not retried.
        """
        check_role(role)
        if subject is not None:
            check_text(subject, "subject")
        if name is not None:
            check_text(name, "name")
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        now = dt.datetime.now(dt.UTC)
        # MongoDB keeps milliseconds: return what list() will show.
        created = now.replace(microsecond=now.microsecond // 1000 * 1000)
        info = KeyInfo(id=key_id, role=role, subject=subject or f"key:{key_id}", name=name, created=created)
        self._collection().insert_one(
            {
                "_id": key_id,
                "hash": _digest(secret),
                "role": info.role,
                "subject": info.subject,
                "name": info.name,
                "created": info.created,
            }
        )
        return info, f"{PREFIX}{key_id}_{secret}"

    def list(self) -> builtins.list[KeyInfo]:
        """Every stored key, revoked ones included, oldest first: no secrets, no hashes."""
        cursor = self._collection().find({}, {"hash": False}).sort([("created", 1), ("_id", 1)])
        return [KeyInfo.from_document(doc) for doc in cursor]

    def revoke(self, key_id: str) -> bool:
        """Revoke a key; False if no key has this id. Revoking a revoked key keeps its first revocation time.

        This store refuses the key at once; other processes within their ``cache_seconds``.
        """
        keys = self._collection()
        try:
            now = dt.datetime.now(dt.UTC)
            if keys.update_one({"_id": key_id, "revoked": None}, {"$set": {"revoked": now}}).matched_count:
                return True
            return keys.find_one({"_id": key_id}, {"_id": True}) is not None
        finally:
            # After the write (even a failed one): a verification that read the key before it is not kept.
            with self._lock:
                self._revocations += 1
                self._cache.pop(key_id, None)

    def authenticate(self, token: str) -> Principal:
        """The principal of a valid key: ``Principal("key", subject, {role}, {"key_id": id})``.

        Raises :class:`InvalidCredentials` with the same message (:data:`INVALID`) for a malformed, unknown or
        revoked key and for a wrong secret; the digests are compared in constant time. Database errors
        propagate. Key ids are not secret (``keys list`` shows them): that an unknown id is refused without
        comparing a digest reveals nothing. The principal of a cached key is shared by every request that
        presents it (its ``claims`` are a read-only mapping).
        """
        match = _KEY.fullmatch(token)
        if match is None:
            raise InvalidCredentials(INVALID)
        key_id, secret = match.groups()
        digest = _digest(secret)
        cached, revocations = self._cached(key_id)
        if cached is not None:
            if hmac.compare_digest(cached.digest, digest):
                return cached.principal
            raise InvalidCredentials(INVALID)
        doc = self._collection().find_one({"_id": key_id})
        if doc is None or doc.get("revoked") is not None:
            raise InvalidCredentials(INVALID)
        stored = doc.get("hash")
        if not isinstance(stored, str) or not hmac.compare_digest(stored, digest):
            raise InvalidCredentials(INVALID)
        info = KeyInfo.from_document(doc)
        principal = Principal(
            kind="key",
            subject=info.subject,
            roles=frozenset({info.role}),
            claims=types.MappingProxyType({"key_id": key_id}),
        )
        self._remember(key_id, _Verified(stored, principal, self._clock() + self._cache_seconds), revocations)
        return principal

    def _cached(self, key_id: str) -> tuple[_Verified | None, int]:
        """The fresh cache entry of ``key_id`` (or None), and the revocation count to pass to ``_remember``."""
        with self._lock:
            entry = self._cache.get(key_id)
            if entry is not None and entry.expires <= self._clock():
                del self._cache[key_id]
                entry = None
            return entry, self._revocations

    def _remember(self, key_id: str, entry: _Verified, revocations: int) -> None:
        """Cache a verification, unless this store revoked a key since it began (its read may predate that)."""
        if self._cache_seconds <= 0:
            return
        with self._lock:
            if self._revocations != revocations:
                return
            self._cache[key_id] = entry
            self._cache.move_to_end(key_id)
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
