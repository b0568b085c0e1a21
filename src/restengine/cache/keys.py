"""The cache's Redis keys: generations per collection and per document, and entry keys per request.

Writers, readers and the watcher (a separate process) must build the same
keys for the same document, hence the stored ``_id`` (not MongoEngine's
value) in item keys.
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
        name = f"{database}.{collection}"
        return cls(generation_key(database, collection), f"{PREFIX}gd:{name}", f"{PREFIX}life:{name}",
                   f"{PREFIX}gi:{name}:")  # fmt: skip

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


def generation_key(database: str, collection: str) -> str:
    """The Redis key of the generation of ``database.collection`` (``restengine watch`` bumps it too)."""
    return f"{PREFIX}g:{database}.{collection}"


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
