"""One MongoDB client per process, made lazily after gunicorn forks.

``init_app`` only *registers* MongoEngine's connection settings: no client is
built and no byte goes to the database until the first request in a worker
needs one. gunicorn's ``post_fork`` hook calls :func:`after_fork`, which drops
any client a preloaded master may have built, so a worker never inherits a
pool; ``worker_exit`` calls :func:`close_all`.

The per-request deadline (``RESTENGINE_DB_TIMEOUT_MS``) is applied where the
database is used: the API's views (:class:`restengine.api.views.Views`) and
the readiness probe each run under a ``pymongo.timeout``.

Writes are ``w: "majority"`` and retryable unless the operator's URI (or a host
app's own connection) says otherwise (:func:`write_defaults`); where lists are
read is :mod:`restengine.replicas`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import mongoengine
from mongoengine.connection import DEFAULT_CONNECTION_NAME

from restengine import metrics, replicas
from restengine.config import DEFAULT_DATABASE, Settings

if TYPE_CHECKING:
    from flask import Flask

EXTENSION = "restengine.db"

# alias -> the keyword arguments given to mongoengine.register_connection,
# kept so after_fork can register the same settings again.
_registered: dict[str, dict[str, Any]] = {}
_adopted: set[str] = set()  # aliases a host app registered itself (see adopt)
_lock = threading.Lock()


def client_options(settings: Settings, *, timeout_ms: int | None = None) -> dict[str, Any]:
    """PyMongo client options for one worker: the pool sized from its threads, and deadlines.

    ``timeout_ms`` overrides the per-operation deadline (the CLI's bulk work
    wants a longer one than a request).
    """
    timeout = settings.db_timeout_ms if timeout_ms is None else timeout_ms
    return {
        "maxPoolSize": settings.max_pool_size,
        "minPoolSize": settings.pool_min,
        "maxIdleTimeMS": settings.pool_max_idle_ms,
        "appname": settings.appname,
        "timeoutMS": timeout,
        "serverSelectionTimeoutMS": timeout,
        "connectTimeoutMS": min(timeout, 5000),
        "uuidRepresentation": _UUID_REPRESENTATIONS[settings.uuid_representation],
        "event_listeners": metrics.listeners(),
    }


def write_defaults(uris: Iterable[str], given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``w: "majority"`` and ``retryWrites``, each unless a URI in ``uris`` or the client options ``given`` set it.

    Why majority: a write acknowledged by the primary alone can be rolled back when another member is
    elected before it replicates, and a 201 must mean the write survives a failover. Retryable writes let
    the driver resend a write once after a failover or a dropped connection without applying it twice (the
    server remembers its ``txnNumber``). An explicit ``w=``/``retryWrites=`` is the operator's choice and
    wins: PyMongo lets keyword options override the URI's, so ours are left out rather than merged.
    """
    named = {key.lower() for key in given or {}}
    for uri in uris:
        if "://" in uri:
            named.update(key.lower() for key, _ in parse_qsl(urlsplit(uri).query, keep_blank_values=True))
    defaults: dict[str, Any] = {}
    if "w" not in named:
        defaults["w"] = "majority"
    if "retrywrites" not in named:
        defaults["retryWrites"] = True
    return defaults


_UUID_REPRESENTATIONS = {
    "standard": "standard",
    "pythonlegacy": "pythonLegacy",
    "javalegacy": "javaLegacy",
    "csharplegacy": "csharpLegacy",
}


def _database_name(uri: str) -> str | None:
    path = urlsplit(uri).path.strip("/")
    return path or None


def register(settings: Settings, *, alias: str = DEFAULT_CONNECTION_NAME, timeout_ms: int | None = None) -> None:
    """Register (not open) MongoEngine's connection ``alias`` for these settings.

    Replaces an earlier registration of the same alias, closing its client.
    """
    uri = settings.database_uri()
    kwargs: dict[str, Any] = {"host": uri, **client_options(settings, timeout_ms=timeout_ms), **write_defaults([uri])}
    if _database_name(uri) is None:
        kwargs["db"] = DEFAULT_DATABASE
    with _lock:
        mongoengine.disconnect(alias)
        mongoengine.register_connection(alias, **kwargs)
        _registered[alias] = kwargs


def adopt(settings: Settings, *, alias: str = DEFAULT_CONNECTION_NAME, timeout_ms: int | None = None) -> bool:
    """Keep a connection a host app registered itself (``mongoengine.connect``, flask-mongoengine), tuned.

    Its target, credentials and every option it set stay; RestEngine's pool
    sizing and deadlines (:func:`client_options`) and write concern
    (:func:`write_defaults`: unless its options or URI set one) fill in the rest. Any client
    it already opened is closed: the next use (after the fork) opens a new one.
    Returns ``False`` when the app registered no such connection (then
    :func:`register` it from the settings).
    """
    from mongoengine.connection import _connection_settings  # MongoEngine keeps registrations only there

    with _lock:
        if alias in _adopted:
            return True  # tuned already (its settings are in _registered, for after_fork)
        theirs = _connection_settings.get(alias)
        if theirs is None or alias in _registered:
            return False
        ours = client_options(settings, timeout_ms=timeout_ms)
        hosts = theirs.get("host") or ()
        kwargs = {**ours, **write_defaults([hosts] if isinstance(hosts, str) else hosts, theirs), **theirs}
        kwargs["event_listeners"] = [*theirs.get("event_listeners", ()), *ours["event_listeners"]]
        _adopted.add(alias)
        mongoengine.disconnect(alias)
        mongoengine.register_connection(alias, **kwargs)
        _registered[alias] = kwargs
    return True


def use(settings: Settings, *, alias: str = DEFAULT_CONNECTION_NAME, timeout_ms: int | None = None) -> None:
    """The connection the settings say: a host app's own (``RESTENGINE_APP``, :func:`adopt`), else :func:`register`."""
    if not (settings.app and adopt(settings, alias=alias, timeout_ms=timeout_ms)):
        register(settings, alias=alias, timeout_ms=timeout_ms)


def after_fork() -> None:
    """In a freshly forked worker: forget clients built before the fork, keep the settings."""
    with _lock:
        for alias, kwargs in _registered.items():
            # PyMongo's own at-fork handler has already reset the inherited
            # client's pools; closing it here uses none of the parent's sockets.
            mongoengine.disconnect(alias)
            mongoengine.register_connection(alias, **kwargs)


def close_all() -> None:
    """Close every client this process opened (gunicorn ``worker_exit``, CLI exit)."""
    with _lock:
        for alias in list(_registered):
            mongoengine.disconnect(alias)
        _registered.clear()
        _adopted.clear()


def get_database(alias: str = DEFAULT_CONNECTION_NAME) -> Any:
    """The PyMongo ``Database`` of ``alias``, building its client on first use."""
    return mongoengine.get_db(alias)


def disable_auto_index(documents: Iterable[type[mongoengine.Document]]) -> None:
    """Keep index builds off the request path for these (unchanged) Document classes.

    MongoEngine otherwise runs ``ensure_indexes`` on the first use of each
    collection in every process; ``restengine indexes`` does it once at deploy.
    """
    for doc_cls in documents:
        doc_cls._meta["auto_create_index"] = False


def init_app(app: Flask, settings: Settings) -> None:
    """Register (not open) the connection ``app`` uses (a host app's own, with ``RESTENGINE_APP``), and where its
    lists are read (:mod:`restengine.replicas`; raises ``ConfigError`` for a staleness limit with primary reads)."""
    replicas.init_app(app, settings)
    use(settings)
    app.extensions[EXTENSION] = settings
