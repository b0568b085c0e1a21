"""The cache policy of an :class:`~restengine.api.Api`, and the WSGI layer that answers fresh hits.

One policy decides, for the WSGI layer and the views alike, whether a GET is
cached, under which key, on which generations it depends, for how long, and
which headers the cached response carries; and what an API write that
MongoEngine's signals do not report (a delete, ``_bulk``) invalidates. The WSGI layer
(:class:`CacheHits`) answers a fresh hit without entering Flask; on anything
else it leaves its lookup in the WSGI environ, so the view that builds the
response does not look the same entry up again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from mongoengine import CASCADE, DENY

from restengine import timing, tracing
from restengine.api.codec import pk_value
from restengine.api.conditional import etag_matches
from restengine.api.model import delete_rules
from restengine.api.routes import route_in
from restengine.cache import Entry, Lookup, Outcome, ResponseCache, request_key
from restengine.constants import CACHE_ANSWER, JSON, REQUEST_ID_HEADER
from restengine.errors import acceptable
from restengine.requestid import request_id

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from restengine.api.resource import Resource

LOOKUP = "restengine.cache.lookup"  # WSGI environ key: (ReadPlan, Lookup) from CacheHits
NOT_MODIFIED_HEADERS = frozenset({"ETag", "Link", "Cache-Control", "X-Cache"})
CREDENTIALS = frozenset({"HTTP_AUTHORIZATION", "HTTP_COOKIE"})  # WSGI environ keys of credential headers


@dataclasses.dataclass(frozen=True)
class ReadPlan:
    """How one GET is cached: its entry key, what it depends on, how long it stays fresh."""

    key: str
    collection: str
    generations: tuple[str, ...]
    ttl: float
    cache_control: str


def not_modified_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers a ``304`` repeats from the ``200`` it stands for (no body metadata such as X-Total-Count)."""
    return {name: value for name, value in headers.items() if name in NOT_MODIFIED_HEADERS}


class CachePolicy:
    """The API's cache policy over one response cache (``None``: nothing is cached)."""

    def __init__(
        self, cache: ResponseCache | None, *, profile: str = "native", expanding: tuple[str, ...] = ("expand",)
    ) -> None:
        """``profile``: the wire format the responses are in (part of every key); ``expanding``: the query
        parameters that embed referenced documents (the fast path leaves those requests to the view)."""
        self.cache = cache
        self.profile = profile
        self.expanding = expanding
        # Requests carrying these (WSGI environ keys) never meet the cache; with
        # an access check of the API's own, Authorization is no longer one of them.
        self.credentials = CREDENTIALS

    def ttl(self, resource: Resource) -> float:
        """Seconds ``resource``'s GETs stay fresh; ``0`` when they are not cached at all."""
        if self.cache is None or not self.cache.enabled:
            return 0
        own = resource.options.cache_ttl
        return own if own is not None else self.cache.default_ttl

    def plan(
        self, resource: Resource, environ: Mapping[str, Any], *, pk: Any = None, expanded: Iterable[Resource] = ()
    ) -> ReadPlan | None:
        """The plan for a GET of ``resource`` (one item when ``pk`` is given, else a list); ``None``: not cached.

        A list depends on every write to its collection; an item on writes to
        that document and collection-wide ones; an expanded reference on every
        write to the referenced collection. A request carrying credentials
        (``Authorization`` or ``Cookie``) is never answered from the shared
        cache nor stored in it (RFC 9111, section 3.5): its response may
        depend on who asks, which the entry key does not say. The API's own
        access check is the exception: it allows or refuses a whole resource
        action, so every caller it lets read gets the same response.
        """
        ttl = self.ttl(resource)
        if ttl <= 0 or self.cache is None or self.credentials & environ.keys():
            return None
        cache = self.cache
        generations = cache.list_generations(target.collection_name for target in expanded)
        if pk is None:
            generations += cache.list_generations([resource.collection_name])
        else:
            generations += cache.item_generations(resource.collection_name, resource.stored_pk(pk))
        # A caller's rule (its documents and fields) makes its responses differ: its own entries.
        variant = resource.variant + "".join(target.variant for target in expanded)
        return ReadPlan(
            request_key(("" if self.profile == "native" else f"{self.profile}:") + resource.name + variant, environ),
            resource.collection_name,
            tuple(generations),
            ttl,
            resource.options.cache_control,
        )

    def lookup(self, plan: ReadPlan) -> Lookup | None:
        """The stored entry for ``plan`` (fresh or not), in one round trip; ``None`` when the cache is away."""
        return None if self.cache is None else self.cache.lookup(plan.key, plan.generations)

    def read(self, plan: ReadPlan, environ: Mapping[str, Any], compute: Callable[[], Entry]) -> Outcome:
        """The response for ``plan``: a hit, a stale entry, or ``compute()`` (stored for the next request).

        Uses the lookup :class:`CacheHits` left in ``environ`` for this same plan, if any.
        """
        if self.cache is None:
            return Outcome(compute(), "miss")
        handed = environ.get(LOOKUP)
        looked_up = handed[1] if handed is not None and handed[0] == plan else None
        return self.cache.read(plan.key, plan.collection, plan.generations, plan.ttl, compute, looked_up)

    @staticmethod
    def headers(entry: Entry, cache_control: str, status: str | None) -> dict[str, str]:
        """Every header of a cached (or cacheable) GET response but ``Content-*``: ``ETag``, the
        entry's own (``Link``, ``X-Total-Count``), ``Cache-Control`` and ``X-Cache`` (``status``, if any)."""
        headers = {"ETag": entry.etag, **entry.headers, "Cache-Control": cache_control}
        if status is not None:
            headers["X-Cache"] = status
        return headers

    def invalidate(self, resource: Resource) -> None:
        """Drop every cached read of ``resource``'s collection, for every worker and instance."""
        if self.cache is not None:
            self.cache.invalidate([resource.collection_name])

    def invalidate_deleted(self, resource: Resource, pk: Any) -> None:
        """After deleting one document (``pk`` as stored): its reads, its collection's lists, and every
        collection its delete rules may have written to, transitively (what a CASCADE deletes sets off
        its own rules)."""
        if self.cache is None:
            return
        ruled = ruled_collections(resource.doc_cls)
        if resource.collection_name in ruled:  # a rule reaches back: other documents of it may be gone
            self.cache.invalidate(ruled)
            return
        if ruled:
            self.cache.invalidate(ruled)
        self.cache.invalidate_items(resource.collection_name, [pk])


def ruled_collections(doc_cls: type[Any]) -> set[str]:
    """Every collection that deleting a ``doc_cls`` document may write to through delete rules.

    A CASCADE deletes documents whose own delete rules apply in turn; NULLIFY
    and PULL change the referring documents and stop there. DENY writes nothing.
    """
    found: set[str] = set()
    visited: set[type[Any]] = set()
    pending = [doc_cls]
    while pending:
        cls = pending.pop()
        if cls in visited:
            continue
        visited.add(cls)
        for ref_cls, _, rule in delete_rules(cls):
            if rule == DENY:
                continue
            found.add(ref_cls._get_collection_name())
            if rule == CASCADE:
                pending.append(ref_cls)
    return found


class CacheHits:
    """WSGI layer in front of Flask: a fresh cached ``GET``/``HEAD`` of the API is answered here.

    It needs no routing, no request context and no view: one lookup, and the
    same response the view would give (body, ETag, ``304`` on
    ``If-None-Match``, ``Cache-Control``, ``X-Cache: hit``, ``X-Request-ID``).
    Anything else — a miss, a stale entry, ``expand``, another method or path —
    goes on to Flask, with the lookup left in the environ for the view.
    """

    def __init__(
        self,
        wsgi_app: WSGIApplication,
        policy: CachePolicy,
        resources: Mapping[str, Resource],
        url_prefix: str,
        scope: Callable[[Resource, WSGIEnvironment], Resource] | None = None,
    ) -> None:
        """``scope`` gives a resource as the request's caller may read it (the access check's)."""
        self.wsgi_app = wsgi_app
        self.policy = policy
        self.resources = resources
        self.prefix = url_prefix
        self.scope = scope

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD")
        if method == "GET" or method == "HEAD":
            with timing.in_cache(), tracing.span("restengine.cache"):
                response = self._hit(environ)
            if response is not None:
                tracing.note_cache("hit")
                status, headers, body = response
                start_response(status, headers)
                return [] if method == "HEAD" else [body]
        return self.wsgi_app(environ, start_response)

    def _plan(self, environ: WSGIEnvironment) -> ReadPlan | None:
        route = route_in(environ, self.prefix)
        if route is None or route.bulk or not acceptable(environ.get("HTTP_ACCEPT")):
            return None  # not a resource read, or the view answers 406
        resource = self.resources.get(route.resource)
        if resource is None or any(p in environ.get("QUERY_STRING", "") for p in self.policy.expanding):
            return None  # the view answers 404, or works out what the expansions depend on
        if self.policy.ttl(resource) <= 0:
            return None  # not cached: nothing to look up (the caller's scope keeps the resource's options)
        if self.scope is not None:
            resource = self.scope(resource, environ)
        if route.item is None:
            return self.policy.plan(resource, environ)
        try:
            pk = pk_value(resource.doc_cls, route.item)
        except (ValueError, TypeError):
            return None  # the view answers 404
        return self.policy.plan(resource, environ, pk=pk)

    def _hit(self, environ: WSGIEnvironment) -> tuple[str, list[tuple[str, str]], bytes] | None:
        plan = self._plan(environ)
        if plan is None:
            return None
        found = self.policy.lookup(plan)
        if found is None or found.entry is None or not found.entry.fresh:
            environ[LOOKUP] = (plan, found)
            return None
        entry = found.entry
        environ[CACHE_ANSWER] = "hit"
        headers = self.policy.headers(entry, plan.cache_control, "hit")
        request_header = (REQUEST_ID_HEADER, request_id(environ.get("HTTP_X_REQUEST_ID")))
        if etag_matches(environ.get("HTTP_IF_NONE_MATCH"), entry.etag):
            return "304 NOT MODIFIED", [*not_modified_headers(headers).items(), request_header], b""
        listed = [*headers.items(), request_header, ("Content-Type", JSON), ("Content-Length", str(len(entry.body)))]
        return "200 OK", listed, entry.body
