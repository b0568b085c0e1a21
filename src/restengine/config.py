"""Typed settings from the environment, a Flask config, or an override mapping.

:class:`Settings` holds what a worker needs; the ``restengine`` command's
stack adds its own settings in :class:`restengine.ops.settings.StackSettings`,
declared and parsed with the same helpers (:func:`setting`, ``parse_*``).

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
from typing import Any, TypeVar
from urllib.parse import quote_plus, urlsplit

from restengine.config_values import (  # the parsers, here too: settings elsewhere are declared with them
    MIN_SECRET_BYTES,
    ConfigError,
    check_secret,
    parse_choice,
    parse_expensive,
    parse_int,
    parse_list,
    parse_max_staleness,
    parse_mongodb_uri,
    parse_networks,
    parse_optional_str,
    parse_origins,
    parse_port,
    parse_rate,
    parse_read_preference,
    parse_redis_url,
    parse_secret,
    parse_str,
    parse_url_prefix,
)

__all__ = [
    "DEFAULT_DATABASE",
    "DEMO_MODULE",
    "MIN_SECRET_BYTES",
    "PREFIX",
    "ConfigError",
    "Settings",
    "Spec",
    "build_settings",
    "check_secret",
    "load_settings",
    "parse_choice",
    "parse_expensive",
    "parse_int",
    "parse_list",
    "parse_max_staleness",
    "parse_mongodb_uri",
    "parse_networks",
    "parse_optional_str",
    "parse_origins",
    "parse_port",
    "parse_rate",
    "parse_read_preference",
    "parse_redis_url",
    "parse_secret",
    "parse_str",
    "parse_url_prefix",
    "require_secret",
    "setting",
    "setting_specs",
]

PREFIX = "RESTENGINE_"
DEMO_MODULE = "restengine.demo.bookstore"
DEFAULT_DATABASE = "restengine"


@dataclasses.dataclass(frozen=True)
class Spec:
    key: str  # the environment / Flask config key
    parse: Callable[[str, Any], Any]
    default: Any
    doc: str


def setting(key: str, parse: Callable[[str, Any], Any], default: Any, doc: str) -> Any:
    return dataclasses.field(default=default, metadata={"spec": Spec(key, parse, default, doc)})


@dataclasses.dataclass(frozen=True)
class Settings:
    """What the app needs in every worker. Build it with :func:`load_settings`.

    The settings of the processes around the workers (data directory, ports,
    demo seed) are :class:`restengine.ops.settings.StackSettings`, a subclass.
    """

    mongodb_uri: str | None = setting(
        "MONGODB_URI",
        parse_mongodb_uri,
        None,
        "MongoDB connection string. Unset: `serve`/`up` start the embedded database server.",
    )
    redis_url: str | None = setting(
        "REDIS_URL",
        parse_redis_url,
        None,
        "Redis URL for the shared cache. Unset: per-process cache only (a warning is logged).",
    )
    documents: tuple[str, ...] = setting(
        "RESTENGINE_DOCUMENTS",
        parse_list,
        (),
        "Comma-separated module paths whose Document classes are served. Unset: with RESTENGINE_APP, every "
        f"Document class the app imported; without, the demo ({DEMO_MODULE}).",
    )
    app: str | None = setting(
        "RESTENGINE_APP",
        parse_optional_str,
        None,
        "Your own Flask app, as `flask --app` takes it (`module:app`, `module:create_app`, "
        "`module:create_app('prod')`): the API is mounted in it and uses its config, connection and hooks.",
    )
    url_prefix: str = setting(
        "RESTENGINE_URL_PREFIX",
        parse_url_prefix,
        "/api",
        "Where the API is mounted.",
    )
    profile: str = setting(
        "RESTENGINE_PROFILE",
        parse_choice("native", "eve", "mongorest"),
        "native",
        "The wire format of the API at RESTENGINE_URL_PREFIX: `native`, `eve` (Eve's `_items`/`_meta`/`_links`, "
        "`?where=`, `?page=`) or `mongorest` (Flask-MongoRest's `data`/`has_more`, `_skip`/`_limit`).",
    )
    data_api: str | None = setting(
        "RESTENGINE_DATA_API",
        lambda name, raw: parse_url_prefix(name, raw) if str(raw).strip() else None,
        None,
        "Where to serve the Atlas Data API's actions (`POST <path>/action/find`...), e.g. "
        "/app/data-abcde/endpoint/data/v1; unset: not served.",
    )
    data_api_aggregate: tuple[str, ...] = setting(
        "RESTENGINE_DATA_API_AGGREGATE",
        parse_list,
        (),
        "Resources the Data API's `aggregate` action may run on (comma-separated names, or *); default none.",
    )
    indexes: str = setting(
        "RESTENGINE_INDEXES",
        parse_choice("create", "check", "off"),
        "create",
        "At start-up: `create` builds the declared indexes that are missing (and logs them), `check` refuses to "
        "start while one is missing, `off` does neither (a warning is logged).",
    )
    threads: int = setting(
        "RESTENGINE_THREADS",
        lambda n, v: parse_int(n, v, 1),
        8,
        "Concurrent requests per worker (gthread threads or gevent connections); sizes the pool.",
    )
    pool_max: int | None = setting(
        "RESTENGINE_POOL_MAX",
        lambda n, v: None if v in (None, "") else parse_int(n, v, 1),
        None,
        "PyMongo maxPoolSize per worker. Default: threads + 2; must be >= threads.",
    )
    pool_min: int = setting("RESTENGINE_POOL_MIN", parse_int, 1, "PyMongo minPoolSize per worker.")
    pool_max_idle_ms: int = setting(
        "RESTENGINE_POOL_MAX_IDLE_MS",
        parse_int,
        60_000,
        "PyMongo maxIdleTimeMS: idle pooled sockets are closed after this.",
    )
    db_timeout_ms: int = setting(
        "RESTENGINE_DB_TIMEOUT_MS",
        lambda n, v: parse_int(n, v, 50),
        1500,
        "Deadline for all database work of one request (PyMongo timeoutMS); past it the answer is 503.",
    )
    list_read_preference: str = setting(
        "RESTENGINE_LIST_READ_PREFERENCE",
        parse_read_preference,
        "primary",
        "Where list GETs are read on a replica set: primary, primaryPreferred, secondaryPreferred, secondary or "
        "nearest. A caller's lists stay on the primary for a while after its own writes (read-your-writes), as do "
        "conditional and cache-filling lists and every item GET.",
    )
    max_staleness_s: int | None = setting(
        "RESTENGINE_MAX_STALENESS_S",
        parse_max_staleness,
        None,
        "PyMongo's maxStalenessSeconds for list reads off the primary (at least 90); unset: no limit. "
        "Not allowed with a primary list read preference.",
    )
    write_timeout_ms: int = setting(
        "RESTENGINE_WRITE_TIMEOUT_MS",
        lambda n, v: parse_int(n, v, 100),
        10_000,
        "Budget for the write itself once it is sent (the deadline above bounds everything before it); "
        "past it the answer is 504 'outcome unknown'.",
    )
    max_batch: int = setting(
        "RESTENGINE_MAX_BATCH",
        lambda n, v: parse_int(n, v, 1),
        1000,
        "Most documents in one array POST and most operations in one _bulk request (413 above it).",
    )
    idempotency_ttl_seconds: int = setting(
        "RESTENGINE_IDEMPOTENCY_TTL_SECONDS",
        lambda n, v: parse_int(n, v, 60),
        86_400,
        "How long an Idempotency-Key and the response it replays are kept (in the database).",
    )
    retry_after: int = setting(
        "RESTENGINE_RETRY_AFTER",
        lambda n, v: parse_int(n, v, 1),
        2,
        "Seconds sent in Retry-After with a 503.",
    )
    ready_timeout_ms: int = setting(
        "RESTENGINE_READY_TIMEOUT_MS",
        lambda n, v: parse_int(n, v, 10),
        500,
        "Budget for each /readyz check (database ping, Redis ping).",
    )
    redis_timeout_ms: int = setting(
        "RESTENGINE_REDIS_TIMEOUT_MS",
        lambda n, v: parse_int(n, v, 1),
        100,
        "Redis connect and socket timeout.",
    )
    appname: str = setting(
        "RESTENGINE_APPNAME", parse_str, "restengine", "appname sent to MongoDB (shows in its logs and currentOp)."
    )
    proxy_count: int = setting(
        "RESTENGINE_PROXY_COUNT",
        parse_int,
        0,
        "Trusted proxies in front of gunicorn (1 behind the bundled nginx); 0 trusts no X-Forwarded-* header.",
    )
    expensive_filters: tuple[str, ...] = setting(
        "RESTENGINE_EXPENSIVE_FILTERS",
        parse_expensive,
        (),
        "Filters no index can serve (contains, icontains, istartswith, endswith, iendswith, iexact) clients may use: "
        "books.title__icontains, books.title (all on a field), books (all on a resource), or *; default none.",
    )
    cors_origins: tuple[str, ...] = setting(
        "RESTENGINE_CORS_ORIGINS",
        parse_origins,
        (),
        "Browser origins allowed to call the API from other sites (comma-separated, exact, or * alone); empty: none.",
    )
    rate_limit: str | None = setting(
        "RESTENGINE_RATE_LIMIT",
        parse_rate,
        "600/minute",
        "Requests each client may make to the API's resources (per API key, per JWT subject, per address when "
        "anonymous), counted in Redis by every worker and instance; `off`: no limit. See *Limits*.",
    )
    write_rate_limit: str | None = setting(
        "RESTENGINE_WRITE_RATE_LIMIT",
        parse_rate,
        "60/minute",
        "The same for writes (POST, PUT, PATCH, DELETE), counted apart from reads; `off`: no limit.",
    )
    expensive_rate_limit: str | None = setting(
        "RESTENGINE_EXPENSIVE_RATE_LIMIT",
        parse_rate,
        "30/minute",
        "Expensive reads (index-less filters, counts no index serves) each client may start, counted apart and "
        "on top of its other limits: with RESTENGINE_QUERY_TIME_MS, how much database time one client can take. "
        "`off`: no limit.",
    )
    query_time_ms: int = setting(
        "RESTENGINE_QUERY_TIME_MS",
        lambda n, v: parse_int(n, v, 10),
        1000,
        "Time the database may spend on one read query (maxTimeMS, kept below RESTENGINE_DB_TIMEOUT_MS); "
        "a query stopped for it is answered 422 'query too expensive'.",
    )
    expensive_concurrency: int = setting(
        "RESTENGINE_EXPENSIVE_CONCURRENCY",
        lambda n, v: parse_int(n, v, 1),
        2,
        "Expensive reads (index-less filters, counts no index serves) one client may run at once, across every "
        "worker and instance (through Redis); no more than half a worker's threads run them together. Past "
        "either: 429.",
    )
    queue_budget_ms: int = setting(
        "RESTENGINE_QUEUE_BUDGET_MS",
        parse_int,
        1000,
        "How long a request may wait for a free thread of its worker (gthread); one that waited longer is "
        "answered 503 with Retry-After at once (health checks never are); 0: wait as long as it takes.",
    )
    metrics: str = setting(
        "RESTENGINE_METRICS",
        parse_choice("on", "off"),
        "on",
        "Prometheus metrics of every worker at GET /metrics (see *Metrics*); `off`: nothing measured or served.",
    )
    log_format: str = setting(
        "RESTENGINE_LOG_FORMAT",
        parse_choice("text", "json"),
        "text",
        "`json`: one JSON object per line from the app, gunicorn and the command line, and (with "
        "RESTENGINE_ACCESS_LOG=on) one per request with its request id, route, status, duration and subject.",
    )
    access_log: str = setting(
        "RESTENGINE_ACCESS_LOG",
        parse_choice("on", "off"),
        "off",
        "A line per request on stdout (gunicorn's, or in JSON the app's own); off: nginx logs every request.",
    )
    server_timing: str = setting(
        "RESTENGINE_SERVER_TIMING",
        parse_choice("on", "off"),
        "on",
        "Server-Timing on the API's answers (time in the cache, the database, the app); `off` keeps timings private.",
    )
    metrics_allow: tuple[str, ...] = setting(
        "RESTENGINE_METRICS_ALLOW",
        parse_networks,
        ("127.0.0.1/32", "::1/128"),
        "Client addresses or networks that may read /metrics (as RESTENGINE_PROXY_COUNT reveals them); callers "
        "whose role the policy lets read `metrics` may too.",
    )
    # The worker reads it too: with MONGODB_URI unset it connects to the embedded server's port.
    db_port: int = setting("RESTENGINE_DB_PORT", parse_port, 27017, "Port of the embedded database server.")
    secret_key: str | None = setting(
        "RESTENGINE_SECRET_KEY",
        lambda n, v: parse_secret(n, parse_optional_str(n, v)),
        None,
        "Signs pagination cursors; at least 32 bytes of random text, the same value on every instance. "
        "Required by the app; "
        "`serve`/`up` create one in the data directory when unset.",
    )
    uuid_representation: str = setting(
        "RESTENGINE_UUID_REPRESENTATION",
        parse_choice("standard", "pythonlegacy", "javalegacy", "csharplegacy"),
        "pythonlegacy",
        "How UUIDs are stored: MongoEngine's own default is pythonLegacy; match what your data holds.",
    )
    cache_ttl: int = setting(
        "RESTENGINE_CACHE_TTL",
        parse_int,
        60,
        "Seconds a cached GET stays fresh (per-resource option cache_ttl overrides); 0 turns the cache off.",
    )
    cache_stale_ttl: int = setting(
        "RESTENGINE_CACHE_STALE_TTL",
        parse_int,
        30,
        "Seconds after the TTL during which an entry no write invalidated may be served while one request rebuilds it.",
    )
    cache_lock_wait_ms: int = setting(
        "RESTENGINE_CACHE_LOCK_WAIT_MS",
        parse_int,
        1000,
        "How long concurrent misses of one key wait for the request rebuilding it before querying themselves.",
    )
    cache_near_mb: int = setting(
        "RESTENGINE_CACHE_NEAR_MB",
        parse_int,
        32,
        "Megabytes of hot cached responses each worker keeps in memory, answered without a Redis round trip and "
        "invalidated by Redis (client tracking); 0 turns it off.",
    )
    cache_breaker_seconds: int = setting(
        "RESTENGINE_CACHE_BREAKER_SECONDS",
        lambda n, v: parse_int(n, v, 1),
        5,
        "After 3 Redis failures in a row, how long the cache is bypassed before Redis is tried again.",
    )
    max_body_bytes: int = setting(
        "RESTENGINE_MAX_BODY_BYTES",
        lambda n, v: parse_int(n, v, 1),
        1024 * 1024,
        "Largest request body accepted (413 above).",
    )
    auth: str = setting(
        "RESTENGINE_AUTH",
        parse_choice("on", "off"),
        "on",
        "`off` serves every request to everyone (a warning is logged); `on` applies the access policy.",
    )
    policy_path: str | None = setting(
        "RESTENGINE_POLICY",
        parse_optional_str,
        None,
        "Path of the access policy (TOML). Unset: reads are open to everyone, writes need an API key or JWT.",
    )
    jwt_secret: str | None = setting(
        "RESTENGINE_JWT_SECRET",
        lambda n, v: parse_secret(n, parse_optional_str(n, v)),
        None,
        "HS256 secret of bearer JWTs (at least 32 bytes).",
    )
    jwks_url: str | None = setting(
        "RESTENGINE_JWKS_URL",
        parse_optional_str,
        None,
        "URL of the JSON Web Key Set whose keys sign RS256/ES256 bearer JWTs.",
    )
    jwks_refresh_seconds: int = setting(
        "RESTENGINE_JWKS_REFRESH_SECONDS",
        lambda n, v: parse_int(n, v, 1),
        30,
        "At most one fetch of the JWKS this often per process (a token naming an unknown key asks for one).",
    )
    jwt_audience: str | None = setting(
        "RESTENGINE_JWT_AUDIENCE", parse_optional_str, None, "The `aud` a JWT must carry, when set."
    )
    jwt_issuer: str | None = setting(
        "RESTENGINE_JWT_ISSUER", parse_optional_str, None, "The `iss` a JWT must carry, when set."
    )
    jwt_roles_claim: str = setting(
        "RESTENGINE_JWT_ROLES_CLAIM",
        parse_str,
        "roles",
        "The JWT claim holding the caller's roles (a list or a string).",
    )

    @property
    def max_pool_size(self) -> int:
        return self.pool_max if self.pool_max is not None else self.threads + 2

    def document_modules(self) -> tuple[str, ...]:
        """The modules to serve when they are named; the demo when neither they nor an app are (else empty)."""
        return self.documents or (() if self.app else (DEMO_MODULE,))

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
    """The secret key; raises :class:`ConfigError` when it is unset or shorter than 32 bytes (there is no fallback)."""
    if not settings.secret_key:
        raise ConfigError(
            "RESTENGINE_SECRET_KEY: required (it signs pagination cursors); set the same random value on every instance"
        )
    check_secret(settings.secret_key)
    return settings.secret_key


def setting_specs(settings_class: type[Settings] = Settings) -> list[Spec]:
    """The documented settings of ``settings_class``, in declaration order (for the README table and tests)."""
    return [f.metadata["spec"] for f in dataclasses.fields(settings_class)]


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
    port = parse_port("MONGODB_SETTINGS.port", merged.get("port", 27017))
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
    return build_settings(Settings, overrides, environ=environ, flask_config=flask_config)


AnySettings = TypeVar("AnySettings", bound=Settings)


def build_settings(
    settings_class: type[AnySettings],
    overrides: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    flask_config: Mapping[str, Any] | None = None,
) -> AnySettings:
    """Build validated settings of ``settings_class`` (:class:`Settings` or a subclass), as :func:`load_settings`."""
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
    for field in dataclasses.fields(settings_class):
        spec: Spec = field.metadata["spec"]
        raw: Any = None
        found = False
        for layer in layers:
            if spec.key in layer:
                raw, found = layer[spec.key], True
        if found:
            values[field.name] = spec.parse(spec.key, raw)
    settings = settings_class(**values)
    if settings.max_pool_size < settings.threads:
        raise ConfigError(
            f"RESTENGINE_POOL_MAX: must be >= RESTENGINE_THREADS ({settings.threads}), got {settings.max_pool_size}"
        )
    if settings.pool_min > settings.max_pool_size:
        raise ConfigError(f"RESTENGINE_POOL_MIN: must be <= the pool maximum ({settings.max_pool_size})")
    return settings
