"""The cache's Redis keys: generations per collection and per document, and entry keys per request.

Writers, readers and the watcher (a separate process) must build the same
keys for the same document, hence the stored ``_id`` (not MongoEngine's
value) in item keys.

Every key of a database's cache carries one Redis Cluster *hash tag*, the
database's name in braces (``re:{shop}:g:books``, ``re:{shop}:c:books:<digest>:3.7``):
Redis Cluster hashes only what is between the first braces, so all of them fall
in one hash slot. That is what the Lua scripts need: a lookup reads a list's
generations, which may be those of several collections (expanded references),
and then the entry whose key it builds from them, all on one node, in one round
trip. The trade-off: on a Cluster one database's cache lives on one master (and
its replicas), so the Cluster gives the cache failover but not sharding; its
memory and throughput are one node's. Rate limits and the expensive-read slots
carry no tag and spread over every master. Tagging per collection would shard
the cache but cost a read of a list across collections a round trip per slot.
The keys are the same whatever ``REDIS_URL`` names, so moving between one server,
Sentinel and Cluster needs no other change.
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus

from bson import ObjectId

PREFIX = "re:"
ITEMS_MAX = 256  # a write of more documents than this invalidates the whole collection


@dataclasses.dataclass(frozen=True)
class CollectionKeys:
    """The Redis keys of one collection's generations, and of its longest entry lifetime."""

    generation: str
    documents: str
    life: str
    prefix: str

    @classmethod
    def of(cls, database: str, collection: str) -> CollectionKeys:
        head = database_prefix(database)
        return cls(generation_key(database, collection), f"{head}gd:{collection}", f"{head}life:{collection}",
                   f"{head}gi:{collection}:")  # fmt: skip

    def item(self, token: str) -> str:
        return self.prefix + token


def item_token(value: Any) -> str | None:
    """A document's ``_id`` (as stored) as a short string, the same in every process; ``None`` for other types.

    Writers and readers must agree on it, the watcher included (it sees the
    stored ``_id`` of a change), hence the stored value, not MongoEngine's.
    """
    if isinstance(value, ObjectId):
        return f"o{value}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"i{value}"
    if isinstance(value, uuid.UUID):
        return f"u{value.hex}"
    if isinstance(value, str):
        return f"s{value}" if len(value) <= 64 else "h" + hashlib.blake2b(value.encode(), digest_size=16).hexdigest()
    return None


def slot_tag(database: str) -> str:
    """The hash tag of ``database``'s keys: its name in braces, or a digest of it when braces would cut it short."""
    if "{" in database or "}" in database or not database:
        return "{" + hashlib.blake2b(database.encode(), digest_size=8).hexdigest() + "}"
    return "{" + database + "}"


def database_prefix(database: str) -> str:
    """What every cache key of ``database`` starts with (``re:{shop}:``); another database's never starts so."""
    return f"{PREFIX}{slot_tag(database)}:"


def entry_base(database: str, base: str) -> str:
    """A :func:`request_key` in ``database``'s hash slot (``re:c:...`` becomes ``re:{shop}:c:...``); one already
    there is returned as it is."""
    head = database_prefix(database)
    return base if base.startswith(head) else head + base.removeprefix(PREFIX)


def generation_key(database: str, collection: str) -> str:
    """The Redis key of the generation of ``database.collection`` (``restengine watch`` bumps it too)."""
    return f"{database_prefix(database)}g:{collection}"


def stored_pk(doc: Any) -> Any:
    """A MongoEngine document's primary key as the database stores it (what the watcher sees)."""
    field = doc._fields.get(doc._meta.get("id_field") or "id")
    return doc.pk if field is None else field.to_mongo(doc.pk)


def _param_name(pair: str) -> str:
    return unquote_plus(pair.partition("=")[0])


def request_key(resource_name: str, environ: Mapping[str, Any]) -> str:
    """The cache key of a GET, from the WSGI environ: resource, scheme, host, path, query.

    The query is normalized by sorting its parameters by (decoded) name, and
    *stably*: a repeated parameter keeps every value, in order, because every
    value counts and their order may too (``?sort=a&sort=b`` sorts by ``a``
    first; ``?fields=a&fields=b`` is not ``?fields=a``). Anything else that
    differs in spelling only (``?fields=a,b`` and ``?fields=a&fields=b``) makes
    a different key: a miss, never a wrong hit. Bodies hold absolute URLs, hence
    scheme and host.
    """
    host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME')}:{environ.get('SERVER_PORT')}"
    pairs = sorted(environ.get("QUERY_STRING", "").split("&"), key=_param_name)
    url = f"{environ.get('wsgi.url_scheme')}://{host}{environ.get('SCRIPT_NAME', '')}{environ.get('PATH_INFO', '')}"
    digest = hashlib.blake2b(f"{url}?{'&'.join(pairs)}".encode(), digest_size=16).hexdigest()
    return f"{PREFIX}c:{resource_name}:{digest}"
