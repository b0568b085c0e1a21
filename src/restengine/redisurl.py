"""What ``REDIS_URL`` names: one Redis server, a Sentinel-managed master, or a Redis Cluster. Pure parsing, no I/O.

Three forms, one URL read the same way by every Redis user (the response cache, the rate limits through the
``limits`` library, the expensive-read slots, readiness and ``restengine watch``):

* ``redis://``, ``rediss://``, ``unix://``: one server, as redis-py's ``Redis.from_url`` reads it;
* ``redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db]``: the sentinels, the name they
  monitor the master under (``sentinel monitor <service> ...``) and the database number (default 0). This is
  the form the ``limits`` library documents for its storage URIs, plus the optional ``/db`` that ``limits``
  cannot read (so :mod:`restengine.ratelimit` hands it the parts, not the URL). The password is sent to the
  sentinels and to the master alike, as ``limits`` does;
* ``redis+cluster://[[user]:password@]host:port[,host:port...]``: some nodes of a Redis Cluster (the rest is
  discovered). A cluster has only database 0, so no path.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

SENTINEL = "redis+sentinel"
CLUSTER = "redis+cluster"
SINGLE_SCHEMES = frozenset({"redis", "rediss", "unix"})

Kind = Literal["single", "sentinel", "cluster"]


@dataclasses.dataclass(frozen=True)
class RedisTarget:
    """A parsed ``REDIS_URL``. ``nodes`` are the sentinels or cluster nodes (empty for one server)."""

    kind: Kind
    url: str
    nodes: tuple[tuple[str, int], ...] = ()
    service: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = None

    def auth(self) -> dict[str, Any]:
        """The ``username``/``password`` keyword arguments redis-py takes, only those the URL gives."""
        given = {"username": self.username, "password": self.password}
        return {key: value for key, value in given.items() if value}

    def locations(self) -> str:
        """``host:port,host:port``: the nodes as a ``limits`` storage URI lists them (no credentials)."""
        return ",".join(f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in self.nodes)


def parse(url: str) -> RedisTarget:
    """The target ``url`` names; ``ValueError`` with a one-line reason when it is not a usable Redis URL."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ValueError(f"not a URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme in SINGLE_SCHEMES:
        return RedisTarget("single", url)
    if scheme not in (SENTINEL, CLUSTER):
        raise ValueError("must be a redis://, rediss://, unix://, redis+sentinel:// or redis+cluster:// URL")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    nodes = tuple(_node(scheme, text) for text in hosts.split(","))
    user, secret = unquote(username) or None, unquote(password) or None
    segments = [segment for segment in parts.path.split("/") if segment]
    if scheme == CLUSTER:
        if segments:
            raise ValueError(f"{CLUSTER}:// takes no path (a cluster has database 0 only), got {parts.path!r}")
        return RedisTarget("cluster", url, nodes, username=user, password=secret)
    if not segments or len(segments) > 2:
        raise ValueError(f"{SENTINEL}:// needs /<service name>[/<db>] after the sentinels, got {parts.path!r}")
    db = segments[1] if len(segments) == 2 else "0"
    if not db.isdigit():
        raise ValueError(f"{SENTINEL}:// database must be a number, got {db!r}")
    return RedisTarget("sentinel", url, nodes, unquote(segments[0]), int(db), username=user, password=secret)


def _node(scheme: str, text: str) -> tuple[str, int]:
    """One ``host:port`` of a sentinel or cluster URL: both are required (no default port, as in ``limits``)."""
    try:
        location = urlsplit(f"//{text.strip()}")
        host, port = location.hostname, location.port
    except ValueError:
        host, port = None, None
    if not host or port is None:
        raise ValueError(f"{scheme}:// needs host:port for every node, got {text!r}")
    return host, port
