"""Typed settings from the environment, a Flask config, or an override mapping.

Precedence, lowest first: built-in defaults, a legacy flask-mongoengine style
config (``MONGODB_SETTINGS``, ``MONGODB_HOST``, ...), the environment
(``RESTENGINE_*`` plus the conventional ``MONGODB_URI`` and ``REDIS_URL``),
then the mapping given to :func:`load_settings`.

Nothing here does I/O or imports the MongoDB driver's network code, so the
gunicorn master can validate settings before it forks.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urlsplit

PREFIX = "RESTENGINE_"
DEMO_MODULE = "restengine.demo.bookstore"
DEFAULT_DATABASE = "restengine"


class ConfigError(ValueError):
    """A setting is missing or invalid; ``str()`` is a one-line reason naming it."""


def _int(name: str, raw: Any, minimum: int = 0) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name}: must be >= {minimum}, got {value}")
    return value


def _port(name: str, raw: Any) -> int:
    value = _int(name, raw, 1)
    if value > 65535:
        raise ConfigError(f"{name}: not a TCP port: {value}")
    return value


def _str(name: str, raw: Any) -> str:
    if not isinstance(raw, str):
        raise ConfigError(f"{name}: expected a string, got {raw!r}")
    return raw.strip()


def _optional_str(name: str, raw: Any) -> str | None:
    return _str(name, raw) or None if raw is not None else None


def _list(name: str, raw: Any) -> tuple[str, ...]:
    items = [str(item).strip() for item in raw] if isinstance(raw, (list, tuple)) else _str(name, raw).split(",")
    return tuple(item for item in (i.strip() for i in items) if item)


def _ports(name: str, raw: Any) -> tuple[int, ...]:
    ports = tuple(_port(name, item) for item in _list(name, raw))
    if not ports:
        raise ConfigError(f"{name}: needs at least one port")
    return ports


def _choice(*choices: str) -> Callable[[str, Any], str]:
    def parse(name: str, raw: Any) -> str:
        value = _str(name, raw).lower()
        if value not in choices:
            raise ConfigError(f"{name}: expected one of {', '.join(choices)}, got {raw!r}")
        return value

    return parse


def _mongodb_uri(name: str, raw: Any) -> str | None:
    uri = _optional_str(name, raw)
    if uri is None:
        return None
    if uri.startswith("mongodb+srv://"):
        return uri  # parsing an SRV URI resolves DNS; the driver checks it on connect
    if not uri.startswith("mongodb://"):
        raise ConfigError(f"{name}: must start with mongodb:// or mongodb+srv://, got {uri!r}")
    from pymongo.uri_parser import parse_uri  # pure parsing, no I/O

    try:
        parse_uri(uri)
    except Exception as exc:  # InvalidURI, ConfigurationError, ValueError
        raise ConfigError(f"{name}: {exc}") from None
    return uri


def _redis_url(name: str, raw: Any) -> str | None:
    url = _optional_str(name, raw)
    if url is not None and urlsplit(url).scheme not in {"redis", "rediss", "unix"}:
        raise ConfigError(f"{name}: must be a redis://, rediss:// or unix:// URL, got {url!r}")
    return url


@dataclasses.dataclass(frozen=True)
class _Spec:
    key: str  # the environment / Flask config key
    parse: Callable[[str, Any], Any]
    default: Any
    doc: str


def _spec(key: str, parse: Callable[[str, Any], Any], default: Any, doc: str) -> Any:
    return dataclasses.field(default=default, metadata={"spec": _Spec(key, parse, default, doc)})


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every RestEngine setting. Build it with :func:`load_settings`."""

    mongodb_uri: str | None = _spec(
        "MONGODB_URI",
        _mongodb_uri,
        None,
        "MongoDB connection string. Unset: `serve`/`up` start the embedded database server.",
    )
    redis_url: str | None = _spec(
        "REDIS_URL",
        _redis_url,
        None,
        "Redis URL for the shared cache. Unset: per-process cache only (a warning is logged).",
    )
    documents: tuple[str, ...] = _spec(
        "RESTENGINE_DOCUMENTS",
        _list,
        (DEMO_MODULE,),
        "Comma-separated module paths whose Document classes are served.",
    )
    threads: int = _spec(
        "RESTENGINE_THREADS",
        lambda n, v: _int(n, v, 1),
        8,
        "Concurrent requests per worker (gthread threads or gevent connections); sizes the pool.",
    )
    pool_max: int | None = _spec(
        "RESTENGINE_POOL_MAX",
        lambda n, v: None if v in (None, "") else _int(n, v, 1),
        None,
        "PyMongo maxPoolSize per worker. Default: threads + 2; must be >= threads.",
    )
    pool_min: int = _spec("RESTENGINE_POOL_MIN", _int, 1, "PyMongo minPoolSize per worker.")
    pool_max_idle_ms: int = _spec(
        "RESTENGINE_POOL_MAX_IDLE_MS", _int, 60_000, "PyMongo maxIdleTimeMS: idle pooled sockets are closed after this."
    )
    db_timeout_ms: int = _spec(
        "RESTENGINE_DB_TIMEOUT_MS",
        lambda n, v: _int(n, v, 50),
        1500,
        "Deadline for all database work of one request (PyMongo timeoutMS); past it the answer is 503.",
    )
    retry_after: int = _spec(
        "RESTENGINE_RETRY_AFTER",
        lambda n, v: _int(n, v, 1),
        2,
        "Seconds sent in Retry-After with a 503.",
    )
    ready_timeout_ms: int = _spec(
        "RESTENGINE_READY_TIMEOUT_MS",
        lambda n, v: _int(n, v, 10),
        500,
        "Budget for each /readyz check (database ping, Redis ping).",
    )
    redis_timeout_ms: int = _spec(
        "RESTENGINE_REDIS_TIMEOUT_MS",
        lambda n, v: _int(n, v, 1),
        100,
        "Redis connect and socket timeout.",
    )
    appname: str = _spec(
        "RESTENGINE_APPNAME", _str, "restengine", "appname sent to MongoDB (shows in its logs and currentOp)."
    )
    proxy_count: int = _spec(
        "RESTENGINE_PROXY_COUNT",
        _int,
        0,
        "Trusted proxies in front of gunicorn (1 behind the bundled nginx); 0 trusts no X-Forwarded-* header.",
    )
    data_dir: Path = _spec(
        "RESTENGINE_DATA_DIR",
        lambda n, v: Path(_str(n, v)).expanduser(),
        Path("var"),
        "Where the embedded database keeps its data, and where `up` writes logs and run files.",
    )
    db_port: int = _spec("RESTENGINE_DB_PORT", _port, 27017, "Port of the embedded database server.")
    redis_port: int = _spec("RESTENGINE_REDIS_PORT", _port, 6379, "Port of the redis-server that `up` starts.")
    http_port: int = _spec("RESTENGINE_HTTP_PORT", _port, 8080, "Port nginx listens on (127.0.0.1) under `up`.")
    instance_ports: tuple[int, ...] = _spec(
        "RESTENGINE_INSTANCE_PORTS",
        _ports,
        (8001, 8002),
        "Ports of the gunicorn instances `up` starts behind nginx; one instance a port.",
    )
    seed_books: int = _spec("RESTENGINE_SEED_BOOKS", _int, 10_000, "Books the demo seed writes on first run.")
    secret_key: str | None = _spec(
        "RESTENGINE_SECRET_KEY",
        _optional_str,
        None,
        "Signs pagination cursors; the same value on every instance. Required by the app; "
        "`serve`/`up` create one in the data directory when unset.",
    )
    uuid_representation: str = _spec(
        "RESTENGINE_UUID_REPRESENTATION",
        _choice("standard", "pythonlegacy", "javalegacy", "csharplegacy"),
        "pythonlegacy",
        "How UUIDs are stored: MongoEngine's own default is pythonLegacy; match what your data holds.",
    )
    cache_ttl: int = _spec(
        "RESTENGINE_CACHE_TTL",
        _int,
        60,
        "Seconds a cached GET stays fresh (per-resource option cache_ttl overrides); 0 turns the cache off.",
    )
    cache_stale_ttl: int = _spec(
        "RESTENGINE_CACHE_STALE_TTL",
        _int,
        30,
        "Seconds after the TTL during which an entry no write invalidated may be served while one request rebuilds it.",
    )
    cache_lock_wait_ms: int = _spec(
        "RESTENGINE_CACHE_LOCK_WAIT_MS",
        _int,
        1000,
        "How long concurrent misses of one key wait for the request rebuilding it before querying themselves.",
    )
    cache_breaker_seconds: int = _spec(
        "RESTENGINE_CACHE_BREAKER_SECONDS",
        lambda n, v: _int(n, v, 1),
        5,
        "After 3 Redis failures in a row, how long the cache is bypassed before Redis is tried again.",
    )
    max_body_bytes: int = _spec(
        "RESTENGINE_MAX_BODY_BYTES",
        lambda n, v: _int(n, v, 1),
        1024 * 1024,
        "Largest request body accepted (413 above).",
    )

    @property
    def max_pool_size(self) -> int:
        return self.pool_max if self.pool_max is not None else self.threads + 2

    def database_name(self) -> str:
        """The database the URI names, else ``restengine``."""
        path = urlsplit(self.database_uri()).path.strip("/")
        return path or DEFAULT_DATABASE

    def database_uri(self, default_port: int | None = None) -> str:
        """The URI to connect to: ``mongodb_uri``, else the embedded server's."""
        if self.mongodb_uri:
            return self.mongodb_uri
        port = default_port or self.db_port
        return f"mongodb://127.0.0.1:{port}/{DEFAULT_DATABASE}?directConnection=true"


def require_secret(settings: Settings) -> str:
    """The secret key; raises :class:`ConfigError` when it is unset (there is no fallback)."""
    if not settings.secret_key:
        raise ConfigError(
            "RESTENGINE_SECRET_KEY: required (it signs pagination cursors); set the same random value on every instance"
        )
    return settings.secret_key


def setting_specs() -> list[_Spec]:
    """The documented settings, in declaration order (for the README table and tests)."""
    return [f.metadata["spec"] for f in dataclasses.fields(Settings)]


def _legacy_mongodb_uri(config: Mapping[str, Any]) -> str | None:
    """A URI from flask-mongoengine style keys, if any are present.

    Accepts ``MONGODB_SETTINGS`` (a dict, or a list of dicts of which the one
    with alias ``default`` is used) and the flat ``MONGODB_HOST``,
    ``MONGODB_PORT``, ``MONGODB_DB``, ``MONGODB_USERNAME``, ``MONGODB_PASSWORD``.
    """
    settings = config.get("MONGODB_SETTINGS")
    if isinstance(settings, (list, tuple)):
        settings = next((s for s in settings if s.get("alias", "default") == "default"), None)
    if settings is not None and not isinstance(settings, Mapping):
        raise ConfigError(f"MONGODB_SETTINGS: expected a dict or a list of dicts, got {settings!r}")
    merged: dict[str, Any] = {
        key[len("MONGODB_") :].lower(): config[key]
        for key in ("MONGODB_HOST", "MONGODB_PORT", "MONGODB_DB", "MONGODB_USERNAME", "MONGODB_PASSWORD")
        if config.get(key) not in (None, "")
    }
    merged.update({k.lower(): v for k, v in (settings or {}).items() if v not in (None, "")})
    if not merged:
        return None
    host = str(merged.get("host", "127.0.0.1"))
    name = merged.get("db") or merged.get("name")
    if host.startswith(("mongodb://", "mongodb+srv://")):
        if name and not urlsplit(host).path.strip("/"):
            split = urlsplit(host)
            host = split._replace(path=f"/{name}").geturl()
        return host
    port = _port("MONGODB_SETTINGS.port", merged.get("port", 27017))
    auth = ""
    if merged.get("username"):
        auth = quote_plus(str(merged["username"]))
        if merged.get("password"):
            auth += ":" + quote_plus(str(merged["password"]))
        auth += "@"
    return f"mongodb://{auth}{host}:{port}/{name or DEFAULT_DATABASE}"


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    flask_config: Mapping[str, Any] | None = None,
) -> Settings:
    """Build validated :class:`Settings`.

    ``overrides`` and ``flask_config`` use the same keys as the environment
    (``MONGODB_URI``, ``RESTENGINE_THREADS``, ...). Raises :class:`ConfigError`
    with a one-line reason naming the setting when a value is invalid.
    """
    environ = os.environ if environ is None else environ
    layers: list[Mapping[str, Any]] = []
    if flask_config is not None:
        legacy_uri = _legacy_mongodb_uri(flask_config)
        layers.append({"MONGODB_URI": legacy_uri} if legacy_uri else {})
        layers.append(flask_config)
    layers.append(environ)
    if overrides:
        legacy_uri = _legacy_mongodb_uri(overrides)
        if legacy_uri:
            layers.append({"MONGODB_URI": legacy_uri})
        layers.append(overrides)

    values: dict[str, Any] = {}
    for field in dataclasses.fields(Settings):
        spec: _Spec = field.metadata["spec"]
        raw: Any = None
        found = False
        for layer in layers:
            if spec.key in layer:
                raw, found = layer[spec.key], True
        if found:
            values[field.name] = spec.parse(spec.key, raw)
    settings = Settings(**values)
    if settings.max_pool_size < settings.threads:
        raise ConfigError(
            f"RESTENGINE_POOL_MAX: must be >= RESTENGINE_THREADS ({settings.threads}), got {settings.max_pool_size}"
        )
    if settings.pool_min > settings.max_pool_size:
        raise ConfigError(f"RESTENGINE_POOL_MIN: must be <= the pool maximum ({settings.max_pool_size})")
    return settings
