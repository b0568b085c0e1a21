"""The application factory, and the one place the request pipeline is assembled."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, request, url_for
from werkzeug.middleware.proxy_fix import ProxyFix

from restengine import cache, db, errors, health, metrics, ratelimit, redisconn, requestid, tracing
from restengine.admission import Admission
from restengine.api import Api
from restengine.api.access import Access
from restengine.api.resource import Resource, default_name
from restengine.auth.keys import COLLECTION as KEYS_COLLECTION
from restengine.auth.keys import KeyStore
from restengine.auth.policy import DEFAULT as DEFAULT_POLICY
from restengine.auth.policy import load_policy
from restengine.auth.tokens import JwtVerifier
from restengine.config import Settings, load_settings, require_secret
from restengine.cors import Cors
from restengine.jsonresp import json_response
from restengine.logs import AccessLog
from restengine.ratelimit import RateLimits
from restengine.timing import ServerTiming

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

SETTINGS = "restengine.settings"  # app.extensions key of the app's Settings, for code running beside it

Layer = Callable[["WSGIApplication"], "WSGIApplication"]

index_bp = Blueprint("index", __name__)


@index_bp.get("/")
def index() -> Response:
    """What this service is, with absolute links (they honour X-Forwarded-* through ProxyFix)."""
    return json_response(
        {
            "name": "restengine",
            "links": {
                "health": url_for("health.healthz", _external=True),
                "ready": url_for("health.readyz", _external=True),
                "api": url_for("restengine_api_index", _external=True),
            },
        }
    )


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the RestEngine WSGI app; with ``RESTENGINE_APP``, the team's own app with the API mounted in it.

    Settings come from the defaults, then the environment, then ``config``
    (same keys as the environment; flask-mongoengine's ``MONGODB_SETTINGS``
    and ``MONGODB_HOST``-style keys are accepted too). Raises
    :class:`restengine.config.ConfigError` on an invalid setting, a missing
    ``RESTENGINE_SECRET_KEY``, or a ``RESTENGINE_DOCUMENTS`` module (or an
    app) that cannot be imported. Does no database or Redis I/O of its own:
    connections open on first use, after any fork.

    A host app (``RESTENGINE_APP``, located as ``flask --app`` does) keeps its
    config (read for these settings too, below the environment), its
    MongoEngine connection (tuned, see :func:`restengine.db.adopt`), its
    extensions, hooks and error handlers for its own routes; the API is
    mounted at ``RESTENGINE_URL_PREFIX`` beside them, with /healthz and
    /readyz unless the app has routes there.
    """
    settings = load_settings(config)
    if settings.app:
        from restengine.hostapp import locate

        app = locate(settings.app)
        settings = load_settings(config, flask_config=app.config)
        hosted = True
    else:
        app = Flask("restengine")
        app.config.from_mapping(config or {})
        hosted = False
    secret = require_secret(settings)
    if not hosted or app.config.get("MAX_CONTENT_LENGTH") is None:
        app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions[SETTINGS] = settings

    if hosted:  # the app's own routes keep its error handlers; the API renders its errors itself
        app.config[errors.RETRY_AFTER] = settings.retry_after
    else:
        errors.init_app(app, retry_after=settings.retry_after)
    requestid.init_app(app)
    if settings.metrics == "on":
        metrics.enable()  # before the database connection is registered: its driver events are measured
    if settings.server_timing == "on":
        metrics.time_commands()
    db.init_app(app, settings)
    redis_conn = redisconn.init_app(app, settings)
    response_cache = cache.init_app(app, settings, redis_conn)
    api = Api(
        app,
        url_prefix=settings.url_prefix,
        secret_key=secret,
        db_timeout_ms=settings.db_timeout_ms,
        write_timeout_ms=settings.write_timeout_ms,
        query_time_ms=min(settings.query_time_ms, settings.db_timeout_ms * 2 // 3),
        expensive_concurrency=settings.expensive_concurrency,
        expensive_total=max(1, settings.threads // 2),
        shared_redis=redis_conn.client if redis_conn.configured else None,
        max_batch=settings.max_batch,
        idempotency_ttl_seconds=settings.idempotency_ttl_seconds,
        cache=response_cache,
        profile=settings.profile,
    )
    for doc_cls in served_documents(settings):
        api.register(doc_cls, expensive=expensive_grants(settings.expensive_filters, default_name(doc_cls)))
    if settings.data_api:
        from restengine.profiles.dataapi import DataApi

        DataApi(api, settings.data_api, aggregate=settings.data_api_aggregate).init_app(app)
    access = access_from_settings(settings, api.resources)
    if access is not None:
        api.protect(access)
    limiter = api.limiter = limiter_from_settings(settings, access)
    taken = {rule.rule for rule in app.url_map.iter_rules()}
    if not hosted:
        app.register_blueprint(index_bp)
    app.before_request(_route_of_request)
    if settings.metrics == "on" and "/metrics" not in taken:
        reads_metrics = None if access is None else _policy_reads_metrics(access)
        app.register_blueprint(metrics.blueprint(settings.metrics_allow, reads_metrics))
    if not {"/healthz", "/readyz"} & taken:
        app.register_blueprint(
            health.blueprint(redis_conn, ready_timeout_ms=settings.ready_timeout_ms, retry_after=settings.retry_after)
        )
    app.extensions[ratelimit.EXTENSION] = limiter
    app.wsgi_app = build_pipeline(app.wsgi_app, settings, api, limiter)  # type: ignore[method-assign,assignment]
    if tracing.wanted():
        tracing.instrument(app, route_namer(api, settings))  # around the whole pipeline: a cached hit is traced too
    return app


def _route_of_request() -> None:
    """Flask matched a URL rule: the route the request metrics name (the API's own are known before Flask)."""
    rule = request.url_rule
    if rule is not None:
        request.environ.setdefault(metrics.ROUTE, rule.rule)


def _policy_reads_metrics(access: Access) -> Callable[[WSGIEnvironment], bool]:
    """Whether the caller's roles may ``read`` the pseudo-resource ``metrics`` (a policy may grant it)."""

    def may_read(environ: WSGIEnvironment) -> bool:
        try:
            return access.policy.reads_metrics(access.principal(environ))
        except errors.Problem:
            return False

    return may_read


def data_api_action(environ: WSGIEnvironment, settings: Settings) -> tuple[str, bool] | None:
    """The Data API action a request is for, and whether it writes; ``None`` for anything else."""
    base = settings.data_api
    path = environ.get("PATH_INFO", "")
    if base is None or not path.startswith(base + "/action/"):
        return None
    from restengine.profiles.dataapi.actions import ACTIONS, READS

    action = path[len(base) + len("/action/") :]
    return (action, action not in READS) if action in ACTIONS else None


def api_route(api: Api, settings: Settings) -> Callable[[WSGIEnvironment], str | None]:
    """The route template of a request to the API (``/api/books/{id}``), for the request metrics; ``None``
    for anything else (a path naming no served resource included)."""
    from restengine.api.routes import route_in

    prefix = api.url_prefix

    def route_of(environ: WSGIEnvironment) -> str | None:
        route = route_in(environ, prefix)
        if route is None or route.resource not in api.resources:
            action = data_api_action(environ, settings)
            return None if action is None else f"{settings.data_api}/action/{action[0]}"
        if route.bulk:
            return f"{prefix}/{route.resource}/_bulk"
        return f"{prefix}/{route.resource}/{{id}}" if route.item is not None else f"{prefix}/{route.resource}"

    return route_of


def route_namer(api: Api, settings: Settings) -> Callable[[WSGIEnvironment], str]:
    """The route a request is named by in logs and traces: the API's template, the URL rule Flask matched,
    else ``unmatched`` (never a raw path)."""
    route_of = api_route(api, settings)

    def named(environ: WSGIEnvironment) -> str:
        return route_of(environ) or environ.get(metrics.ROUTE) or metrics.UNMATCHED

    return named


def limiter_from_settings(settings: Settings, access: Access | None) -> ratelimit.Limiter | None:
    """The rate limiter ``settings`` (and the access policy) ask for; ``None`` when nothing is limited."""
    storage, shared = ratelimit.storage_for(settings)
    limiter = ratelimit.Limiter(
        storage,
        read=settings.rate_limit,
        write=settings.write_rate_limit,
        expensive=settings.expensive_rate_limit,
        policy=access.policy if access is not None else None,
        shared=shared,
    )
    if not limiter.enabled:
        return None
    if not shared:
        log.warning("REDIS_URL is not set: rate limits are counted by each worker process on its own")
    return limiter


def documents_served_by(settings: Settings) -> list[type[Any]]:
    """What a worker built from ``settings`` serves, worked out outside one (the command line, gunicorn's master,
    ``up``): a host app (``RESTENGINE_APP``) is built first, as a worker builds it, so its models are imported
    and its connection registered. Raises :class:`ConfigError` as :func:`create_app` would."""
    if settings.app:
        from restengine.hostapp import locate

        locate(settings.app)
    return served_documents(settings)


def served_documents(settings: Settings) -> list[type[Any]]:
    """The Document classes to serve: those of ``RESTENGINE_DOCUMENTS``; without it, every one a host app
    imported (``RESTENGINE_APP``, located first), else the demo's."""
    from restengine.documents import imported_documents, load_documents

    modules = settings.document_modules()
    return load_documents(modules) if modules else imported_documents()


def access_from_settings(settings: Settings, resources: Mapping[str, Resource]) -> Access | None:
    """The access check ``settings`` ask for; ``None`` with ``RESTENGINE_AUTH=off`` (logged as a warning).

    API keys live in the served database; JWTs are accepted when a secret or
    a JWKS URL is set; the policy is ``RESTENGINE_POLICY``'s, else the default
    (everyone reads, the ``admin`` role writes). Raises
    :class:`restengine.config.ConfigError` for an invalid policy file.
    """
    if settings.auth == "off":
        log.warning("RESTENGINE_AUTH=off: every client may read and write every resource")
        return None
    fields = {name: resource.exposed | resource.unexposed for name, resource in resources.items()}
    policy = load_policy(settings.policy_path, fields) if settings.policy_path else DEFAULT_POLICY
    keys = KeyStore(lambda: db.get_database()[KEYS_COLLECTION])
    tokens = JwtVerifier.from_settings(settings)
    access = Access(policy, keys=keys, tokens=tokens if tokens.configured else None)
    access.compile(resources)
    return access


def expensive_grants(entries: tuple[str, ...], resource: str) -> list[str]:
    """What ``RESTENGINE_EXPENSIVE_FILTERS`` allows on the resource ``resource`` (``ResourceOptions.expensive``)."""
    if "*" in entries or resource in entries:
        return ["*"]
    return [entry.partition(".")[2] for entry in entries if entry.partition(".")[0] == resource]


def profile_mounts(wsgi_app: WSGIApplication, api: Api, settings: Settings) -> WSGIApplication:
    """The layer telling the others which compatibility profile a request is for (see :mod:`restengine.profiles`)."""
    from restengine.profiles import Mounts, profile

    shapes = [(api.url_prefix, shape)] if (shape := api.error_shape) is not None else []
    keys = []
    if settings.data_api:
        from restengine.profiles.dataapi import DataApi

        shapes.append((settings.data_api, DataApi.error_shape))
        keys.append(settings.data_api)
    slashes = [api.url_prefix] if profile(api.profile).strips_slash else []
    return Mounts(wsgi_app, shapes, keys, slashes) if shapes or keys or slashes else wsgi_app


def build_pipeline(
    flask_app: WSGIApplication, settings: Settings, api: Api, limiter: ratelimit.Limiter | None = None
) -> WSGIApplication:
    """Every WSGI layer around Flask, in the order a request meets them.

    000. ``Mounts``: which compatibility profile the request is for (its error shape, the Data API's ``apiKey``,
       Flask-MongoRest's trailing slash; see :mod:`restengine.profiles`).
    00. ``AccessLog`` (with ``RESTENGINE_LOG_FORMAT=json`` and ``RESTENGINE_ACCESS_LOG=on``): a JSON line per
       request (see :mod:`restengine.logs`).
    0a. ``Requests`` (with ``RESTENGINE_METRICS=on``): every request's duration and status, whoever answers
       it (see :mod:`restengine.metrics`).
    0b. ``Admission`` (with ``RESTENGINE_QUEUE_BUDGET_MS``): a request that waited too long for a thread of
       its worker is refused with a 503 at once (see :mod:`restengine.admission`).
    1. ``ProxyFix`` (with ``RESTENGINE_PROXY_COUNT`` trusted proxies): the
       client's address, scheme and host, as later layers and URLs see them.
    1b. ``ServerTiming`` (with ``RESTENGINE_SERVER_TIMING``): where an API request's time went, in the
       answer (see :mod:`restengine.timing`).
    2. ``Cors`` (with ``RESTENGINE_CORS_ORIGINS``): the headers a browser on another site needs, on every
       answer, a refusal or a cached hit included.
    3. The checks every request must pass, a cached one included, after the
       client is known and before anything can answer: ``RateLimits`` (the
       caller's budget, see :mod:`restengine.ratelimit`), then ``Guard``, the
       API's access check (who is asking, and may they).
    4. ``CacheHits``: a fresh cached GET of the API answered from the shared
       cache, without entering Flask; anything else goes on, its lookup
       handed to the view.
    5. Flask: routing, request ids, the views (each under the database
       deadline, see :class:`restengine.api.views.Views`), errors as problem+json.
    """
    layers: list[Layer] = [lambda inner: profile_mounts(inner, api, settings)]
    named = route_namer(api, settings)
    if settings.log_format == "json" and settings.access_log == "on":  # gunicorn's own access log is text
        layers.append(lambda inner: AccessLog(inner, named))
    if settings.metrics == "on":
        layers.append(lambda inner: metrics.Requests(inner, named))
    if settings.queue_budget_ms:
        budget, retry_after = settings.queue_budget_ms / 1000, settings.retry_after
        layers.append(lambda inner: Admission(inner, budget, retry_after))
    if settings.proxy_count:
        n = settings.proxy_count
        layers.append(lambda inner: ProxyFix(inner, x_for=n, x_proto=n, x_host=n, x_port=n))
    if settings.server_timing == "on":
        prefix = api.url_prefix
        layers.append(lambda inner: ServerTiming(inner, prefix))
    if settings.cors_origins:
        origins = settings.cors_origins
        layers.append(lambda inner: Cors(inner, origins))
    if limiter is not None:
        access = api.access
        who = access.principal if access is not None else None

        def data_api(environ: WSGIEnvironment) -> tuple[str, bool] | None:
            action = data_api_action(environ, settings)
            return None if action is None else ("*", action[1])

        layers.append(lambda inner: RateLimits(inner, limiter, api.resources, api.url_prefix, who, data_api))
    layers.append(api.guard)
    layers.append(api.cache_hits)
    wsgi = flask_app
    for layer in reversed(layers):
        wsgi = layer(wsgi)
    return wsgi
