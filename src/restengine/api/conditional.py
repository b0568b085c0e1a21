"""Strong ETags and the conditional request headers (RFC 9110 section 13)."""

from __future__ import annotations

import hashlib

from flask import Request


def etag_of(body: bytes) -> str:
    """A strong ETag: a hash of the exact representation bytes."""
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def _tags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def etag_matches(header: str | None, etag: str) -> bool:
    """True when an ``If-None-Match`` header matches ``etag`` (weak comparison): answer 304 to a GET."""
    if not header:
        return False
    tags = _tags(header)
    return "*" in tags or etag in (t.removeprefix("W/") for t in tags)


def none_match(request: Request, etag: str) -> bool:
    return etag_matches(request.headers.get("If-None-Match"), etag)


def if_match(request: Request) -> list[str] | None:
    """The ``If-Match`` tags, or ``None`` when the header is absent."""
    header = request.headers.get("If-Match")
    return None if header is None else _tags(header)


def match(tags: list[str], etag: str) -> bool:
    """Strong comparison, as ``If-Match`` requires: a weak tag never matches."""
    return "*" in tags or etag in tags
