"""The process's Redis client, built lazily from ``REDIS_URL`` with short timeouts: one server, Sentinel or Cluster.

Redis is optional: without ``REDIS_URL`` there is no client (the response
cache says at start-up what it does instead). The client is made on first
use, so nothing connects before gunicorn forks; redis-py's pool also notices
a fork and reconnects in the child.

Failover is redis-py's own, nothing is discovered by hand here:

* ``redis+sentinel://``: ``Sentinel.master_for`` gives a client whose every new
  connection asks the sentinels for the current master, and which drops a
  connection that finds the old master demoted (``READONLY``). A command that
  fails on a broken connection is retried once, on a new connection, so the
  first call after a failover usually reaches the new master.
* ``redis+cluster://``: ``RedisCluster`` follows ``MOVED``/``ASK`` and refreshes
  its slot map when a node fails and a replica takes over.

Building a ``RedisCluster`` asks a node for the slot map (I/O): an error doing
so is raised as ``redis.ConnectionError`` when the client is first used, like
any other unreachable Redis, and the next use tries again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException, RedisError
from redis.retry import Retry
from redis.sentinel import Sentinel

from restengine.config import Settings
from restengine.redisurl import RedisTarget, parse

if TYPE_CHECKING:
    from flask import Flask

EXTENSION = "restengine.redis"

Client: TypeAlias = "redis.Redis | RedisCluster"
ERRORS: tuple[type[Exception], ...] = (RedisError, RedisClusterException)
"""What a call to Redis may raise when Redis is unreachable or mid-failover (redis-py's cluster errors are not
all ``RedisError``s)."""

HEALTH_CHECK_INTERVAL = 30  # seconds idle before a pooled connection is PINGed before use


def _retry(timeout: float) -> Retry:
    """One retry, soon: enough to move to a new master after a failover, never more than a timeout's worth of wait.

    redis-py's default (3 retries, backoff up to 10 s) would hold a request far longer than its Redis timeout.
    """
    return Retry(ExponentialBackoff(cap=timeout, base=min(0.01, timeout)), retries=1)


def sentinel_options(target: RedisTarget, timeout: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """The keyword arguments of ``Sentinel(...)`` for ``target``: the master's connections', and the sentinels'.

    A sentinel that does not answer is not retried (the next one is asked): with redis-py's default retry, three
    unreachable sentinels would hold one discovery for up to 21 s.
    """
    sockets = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    sentinels = {**sockets, **target.auth(), "retry": Retry(NoBackoff(), 0)}
    master = {**sockets, **target.auth(), "health_check_interval": HEALTH_CHECK_INTERVAL, "retry": _retry(timeout)}
    return master, sentinels


def build_client(target: RedisTarget, timeout: float) -> Client:
    """A client for ``target`` with ``timeout`` seconds to connect and to answer; does no I/O except for a Cluster.

    Raises ``redis.ConnectionError`` when a Cluster's slot map cannot be read.
    """
    sockets: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if target.kind == "single":
        return redis.Redis.from_url(target.url, health_check_interval=HEALTH_CHECK_INTERVAL, **sockets)
    if target.kind == "sentinel":
        assert target.service is not None
        options, sentinel_kwargs = sentinel_options(target, timeout)
        sentinel = Sentinel(list(target.nodes), sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
        master: redis.Redis = sentinel.master_for(target.service, db=target.db, **options)  # type: ignore[no-untyped-call]
        return master
    try:
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],  # type: ignore[no-untyped-call]
            health_check_interval=HEALTH_CHECK_INTERVAL,
            retry=_retry(timeout),
            **sockets,
            **target.auth(),
        )
    except RedisClusterException as exc:  # no node answered with a slot map
        raise redis.ConnectionError(f"Redis Cluster unreachable: {exc}") from exc


def client_for_url(url: str, timeout: float) -> Client:
    """A client for ``url`` (any ``REDIS_URL`` form) with ``timeout`` seconds, for processes without an app."""
    return build_client(parse(url), timeout)


class RedisConnection:
    """Holds the lazily built clients for one app: one for requests, one for readiness checks."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.redis_url
        self.target = parse(self.url) if self.url is not None else RedisTarget("single", "")
        self.timeout = settings.redis_timeout_ms / 1000
        self.ready_timeout = settings.ready_timeout_ms / 1000
        self._client: Client | None = None
        self._probe: Client | None = None

    @property
    def configured(self) -> bool:
        return self.url is not None

    def _build(self, timeout: float) -> Client:
        if self.url is None:
            raise RuntimeError("REDIS_URL is not set")
        return build_client(self.target, timeout)

    def client(self) -> Client:
        """The client requests use (``RESTENGINE_REDIS_TIMEOUT_MS``).

        Raises ``RuntimeError`` without ``REDIS_URL``, ``redis.ConnectionError`` when a Cluster cannot be reached.
        """
        if self._client is None:
            self._client = self._build(self.timeout)
        return self._client

    def ping(self) -> None:
        """Ping Redis within ``RESTENGINE_READY_TIMEOUT_MS`` (its own client, so a probe never holds up requests).

        Under Sentinel this is the current master (a probe after a failover finds the new one); under Cluster,
        a node serving slots. Raises ``redis.RedisError`` when Redis does not answer in time, ``RuntimeError``
        without ``REDIS_URL``.
        """
        if self._probe is None:
            self._probe = self._build(self.ready_timeout)
        try:
            self._probe.ping()
        except RedisClusterException as exc:
            raise redis.ConnectionError(str(exc)) from exc


def init_app(app: Flask, settings: Settings) -> RedisConnection:
    conn = RedisConnection(settings)
    app.extensions[EXTENSION] = conn
    return conn
