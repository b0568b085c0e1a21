"""``Api``: the registry of served Document classes, mounted on a Flask app or Blueprint."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask
from flask.sansio.app import App

from restengine import db
from restengine.api.access import Access, Guard
from restengine.api.budget import Slots
from restengine.api.caching import CacheHits, CachePolicy
from restengine.api.docs import Docs
from restengine.api.idempotency import COLLECTION as IDEMPOTENCY_COLLECTION
from restengine.api.idempotency import IdempotencyStore
from restengine.api.openapi import OpenApi
from restengine.api.options import ResourceOptions
from restengine.api.resource import Resource
from restengine.api.routes import Route
from restengine.auth.policy import DEFAULT as DEFAULT_POLICY
from restengine.auth.policy import Policy
from restengine.auth.principal import Principal
from restengine.cache import ResponseCache
from restengine.config import ConfigError, check_secret
from restengine.constants import ALL_METHODS

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

    from restengine.ratelimit import Limiter

EXTENSION = "restengine.api"


def _any_method(app: App, views: list[Callable[..., Any]]) -> None:
    """Let the URL rules of ``views`` match every HTTP method."""
    for rule in app.url_map.iter_rules():
        if any(app.view_functions.get(rule.endpoint) is view for view in views):
            rule.methods = None


class Api:
    """Serves MongoEngine Document classes under ``url_prefix`` (``/api``).

    ``Api(app)`` or ``api.init_app(app)`` mounts it on a Flask app;
    ``Api(blueprint)`` on a Blueprint, so an existing app keeps its own
    routes beside it (register the blueprint on the app afterwards).
    ``register`` and ``register_module`` may be called before or after mounting.
    ``secret_key`` signs pagination cursors (at least 32 bytes, else
    :class:`ConfigError`); ``db_timeout_ms`` is the database deadline of each
    request to the API before its write is sent, ``write_timeout_ms`` the budget of the write itself
    (see :mod:`restengine.api.outcome`); ``query_time_ms`` the database time of the queries that build one
    GET's answer, ``expensive_concurrency`` and ``expensive_total`` the expensive reads one caller, and all
    callers, may run at once (one caller's counted in the Redis ``shared_redis`` gives, when it does: see
    :mod:`restengine.api.budget`); ``max_batch`` the most
    documents of an array POST and operations of a ``_bulk``; ``idempotency_ttl_seconds`` how long
    ``Idempotency-Key`` records are kept (in the default connection's database; ``None``: the header is
    ignored); ``cache`` is the response cache
    (``restengine.create_app`` passes its own; without one nothing is cached).
    ``authenticate`` (the WSGI environ → a :class:`Principal`, or ``None``
    for bearer credentials or anonymous) and ``policy`` protect the API in a
    host app; without either, the host app's own checks are all there is.
    ``openapi_path`` serves the OpenAPI document (beside the API, not under
    ``url_prefix``; ``None``: not served); ``openapi_info`` adds to its ``info``.
    ``docs_path`` serves a documentation page rendering that document (Swagger
    UI, its files served by the app itself; ``None``: not served).
    """

    def __init__(
        self,
        app: Flask | Blueprint | None = None,
        *,
        url_prefix: str = "/api",
        secret_key: str | None = None,
        db_timeout_ms: int = 1500,
        write_timeout_ms: int = 10_000,
        query_time_ms: int = 1000,
        expensive_concurrency: int = 2,
        expensive_total: int = 4,
        shared_redis: Callable[[], Any] | None = None,
        max_batch: int = 1000,
        idempotency_ttl_seconds: int | None = 86_400,
        cache: ResponseCache | None = None,
        openapi_path: str | None = "/openapi.json",
        openapi_info: Mapping[str, Any] | None = None,
        docs_path: str | None = "/docs",
        authenticate: Callable[[WSGIEnvironment], Principal | None] | None = None,
        policy: Policy | None = None,
        profile: str = "native",
    ) -> None:
        from restengine import profiles

        if profile not in profiles.NAMES:
            raise ConfigError(f"unknown profile {profile!r} (one of {', '.join(profiles.NAMES)})")
        self.profile = profile
        self.url_prefix = url_prefix.rstrip("/")
        self.resources: dict[str, Resource] = {}
        self._by_class: dict[type[Any], Resource] = {}
        self._secret_key = None if secret_key is None else check_secret(secret_key, "secret_key")
        self.db_timeout = db_timeout_ms / 1000
        self.write_timeout = write_timeout_ms / 1000
        self.query_time = min(query_time_ms, db_timeout_ms) / 1000
        self.slots = Slots(expensive_concurrency, expensive_total, shared=shared_redis, lease=2 * self.db_timeout + 1)
        self.max_batch = max_batch
        self.idempotency = (
            None
            if idempotency_ttl_seconds is None
            else IdempotencyStore(
                lambda: db.get_database()[IDEMPOTENCY_COLLECTION],
                ttl_seconds=idempotency_ttl_seconds,
                lease=self.db_timeout + self.write_timeout,
            )
        )
        self.cache = cache
        self.cache_policy = CachePolicy(cache, profile=profile, expanding=profiles.profile(profile).expanding)
        self.openapi_path = openapi_path
        self.openapi = OpenApi(self, openapi_info)
        self.version = 0  # bumped by every registration: the OpenAPI document is rebuilt
        self.openapi_extensions: list[Callable[[], dict[str, Any]]] = []  # paths of other mounts (the Data API)
        self.docs_path = docs_path
        self._endpoint_prefix = ""
        self.access: Access | None = None
        self.limiter: Limiter | None = None  # counts the expensive reads too (restengine.create_app sets it)
        if authenticate is not None or policy is not None:
            self.protect(Access(policy or DEFAULT_POLICY, authenticate=authenticate))
        if app is not None:
            self.init_app(app)

    def protect(self, access: Access) -> None:
        """Check every request against ``access`` from now on (its credentials, then its policy).

        With an access check, ``Authorization`` belongs to it: cached responses
        are shared by every caller the policy lets read them.
        """
        self.access = access
        self.cache_policy.credentials = frozenset({"HTTP_COOKIE"})

    def guard(self, wsgi_app: Any) -> Any:
        """The WSGI layer running the access check before ``wsgi_app``; ``wsgi_app`` itself when unprotected."""
        return wsgi_app if self.access is None else Guard(wsgi_app, self.access, self.resources, self.url_prefix)

    @property
    def error_shape(self) -> Callable[[Any], tuple[Any, str, int]] | None:
        """How this API's profile shapes its errors (``None``: problem+json)."""
        from restengine.profiles import profile

        return profile(self.profile).error_shape

    def init_app(self, app: Flask | Blueprint) -> None:
        from restengine.profiles import profile

        views = profile(self.profile).views(self, self.cache_policy)
        rules: list[tuple[str, str, Callable[..., Any], Callable[..., Route] | None]] = [
            ("/", "index", views.index, None),
            ("/<name>", "collection", views.collection, lambda name: Route(name)),
            ("/<name>/_bulk", "bulk", views.bulk, lambda name: Route(name, bulk=True)),
            # ``path``: a string key may hold a ``/`` (routes.parse_route reads it the same way)
            ("/<name>/<path:item_id>", "item", views.item, lambda name, item_id: Route(name, item=item_id)),
        ]
        if self.profile != "native":  # a profile speaks its own system's URLs: no _bulk, its home without a slash
            del rules[2]
            rules.append(("", "home", views.index, None))
        served: list[Callable[..., Any]] = []
        for rule, endpoint, view, route in rules:
            served.append(views.guarded(view, route))
            app.add_url_rule(
                self.url_prefix + rule, f"restengine_api_{endpoint}", served[-1], methods=list(ALL_METHODS)
            )
        # Every method reaches the views, which answer 405 with the resource's own Allow (werkzeug's would list
        # ALL_METHODS): a rule whose methods are None matches any method.
        if isinstance(app, Blueprint):
            app.record(lambda state: _any_method(state.app, served))
        else:
            _any_method(app, served)
        if self.openapi_path is not None:
            app.add_url_rule(self.openapi_path, "restengine_api_openapi", views.guarded(self.openapi.view))
        if self.docs_path is not None:
            Docs(self).init_app(app, self.docs_path)
        if isinstance(app, Blueprint):
            self._endpoint_prefix = f"{app.name}."
            app.record_once(lambda state: state.app.extensions.setdefault(EXTENSION, self))
        else:
            app.extensions[EXTENSION] = self

    def cache_hits(self, wsgi_app: Any) -> CacheHits:
        """The WSGI layer answering fresh cached GETs of this API before ``wsgi_app`` (Flask) runs."""
        return CacheHits(
            wsgi_app, self.cache_policy, self.resources, self.url_prefix, lambda r, e: self.scoped(r, e, "read")
        )

    def scoped(self, resource: Resource, environ: WSGIEnvironment, act: str) -> Resource:
        """``resource`` as the request's caller reaches it with ``act`` (its documents and fields)."""
        return resource if self.access is None else self.access.scoped(resource, environ, act)

    def endpoint(self, name: str) -> str:
        return f"{self._endpoint_prefix}restengine_api_{name}"

    def register(self, doc_cls: type[Any], **options: Any) -> Resource:
        """Serve ``doc_cls`` with these :class:`ResourceOptions`; registering a class again replaces them.

        Raises ``ValueError`` for an unknown option field, and :class:`ConfigError` (a ``ValueError``) naming
        both classes (``module.Class``) for a URL name taken by another class or another served class with the
        same MongoEngine class name (its global registry keeps one class per name).
        """
        from restengine.documents import qualified

        resource = Resource(doc_cls, ResourceOptions(**options), self.resource_for)
        taken = self.resources.get(resource.name)
        if taken is not None and taken.doc_cls is not doc_cls:
            raise ConfigError(
                f"two served classes have the resource name {resource.name!r}: {qualified(taken.doc_cls)} and"
                f" {qualified(doc_cls)} (register one under another name)"
            )
        same = next((c for c in self._by_class if c is not doc_cls and c._class_name == doc_cls._class_name), None)
        if same is not None:
            raise ConfigError(
                f"two served classes have the class name {doc_cls._class_name!r}: {qualified(same)} and"
                f" {qualified(doc_cls)} (MongoEngine keeps one class per name; rename one of them)"
            )
        old = self._by_class.pop(doc_cls, None)
        if old is not None:
            self.resources.pop(old.name, None)
        self.resources[resource.name] = resource
        self._by_class[doc_cls] = resource
        self.version += 1
        db.disable_auto_index([doc_cls])
        return resource

    def register_module(self, module: ModuleType | str) -> list[Resource]:
        """Serve every concrete Document class defined in ``module`` (an object or a dotted path)."""
        from restengine.documents import load_documents

        name = module if isinstance(module, str) else module.__name__
        return [self.register(cls) for cls in load_documents([name])]

    def resource_for(self, doc_cls: type[Any]) -> Resource | None:
        """The resource serving ``doc_cls``, or ``None`` when this API does not serve it.

        That is the class's own registered resource, else the nearest registered
        ancestor whose resource lists it (a subclass sharing its collection,
        ``allow_inheritance``). Only what this returns may be expanded, referenced
        by a write, or described in the OpenAPI document.
        """
        for cls in getattr(doc_cls, "__mro__", ()):
            resource = self._by_class.get(cls)
            if resource is not None and (cls is doc_cls or doc_cls._class_name in cls._subclasses):
                return resource
        return None

    def secret(self) -> bytes:
        """The cursor-signing key; raises :class:`ConfigError` when ``Api`` was given none."""
        if self._secret_key is None:
            raise ConfigError("RESTENGINE_SECRET_KEY: pass secret_key= to Api() outside restengine.create_app")
        return self._secret_key
