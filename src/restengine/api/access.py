"""Who is asking and whether they may: the API's access check, and the WSGI layer that runs it first.

:class:`Access` turns a request's credentials into a :class:`Principal` (an
API key or a JWT sent as ``Authorization: Bearer …``, or an app's own
``authenticate`` callable) and asks the :class:`Policy` whether that
principal may take the request's action on its resource. :class:`Guard` runs
it in front of everything else that can answer an API request — the shared
cache's hits included — so no response reaches a caller the policy refuses.
When the API is mounted in a host app (no Guard), the views run the same check.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from restengine import metrics
from restengine.api.filters import coerce
from restengine.api.model import UnknownField, resolve
from restengine.api.resource import Resource
from restengine.api.routes import Route, action, route_in
from restengine.auth.keys import KeyStore, looks_like_key
from restengine.auth.policy import Policy
from restengine.auth.principal import ANONYMOUS, InvalidCredentials, Principal
from restengine.auth.tokens import JwtVerifier, KeysUnavailable
from restengine.config import ConfigError
from restengine.errors import (
    Forbidden,
    InvalidParameter,
    Problem,
    ServiceUnavailable,
    Unauthorized,
    refuse,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

VARIANTS = 1024  # restricted resources kept per process (one per role set and claim values met)
PRINCIPAL = "restengine.principal"  # WSGI environ key: the Principal once established (or the Problem refusing it)
CHECKED = "restengine.access.checked"  # WSGI environ key: the request's action was allowed
SCOPED = "restengine.access.scoped"  # WSGI environ key: (resource id, action) -> the resource as the caller reaches it
log = logging.getLogger(__name__)

HOW_TO = (
    "Send Authorization: Bearer <API key or JWT> for a role the access policy allows "
    "(`restengine keys create --role admin` makes a key; RESTENGINE_POLICY sets the policy)."
)


class Access:
    """The access check of one API: authentication, then the policy's decision.

    ``authenticate`` (a host app's own login) gets the WSGI environ and returns
    a principal or ``None`` (then bearer credentials, else anonymous).
    """

    def __init__(
        self,
        policy: Policy,
        *,
        keys: KeyStore | None = None,
        tokens: JwtVerifier | None = None,
        authenticate: Callable[[WSGIEnvironment], Principal | None] | None = None,
    ) -> None:
        self.policy = policy
        self.keys = keys
        self.tokens = tokens
        self.authenticate = authenticate
        self._variants: OrderedDict[tuple[Any, ...], Resource] = OrderedDict()
        self._lock = threading.Lock()

    def principal(self, environ: WSGIEnvironment) -> Principal:
        """The caller of the request in ``environ`` (remembered there).

        Raises :class:`Unauthorized` for credentials that are sent and invalid,
        :class:`ServiceUnavailable` when the keys that would verify them cannot be had.
        """
        known: Principal | Problem | None = environ.get(PRINCIPAL)
        if isinstance(known, Problem):
            raise known  # credentials are verified once per request, rate limits and the check both ask
        if known is not None:
            return known
        try:
            found = self.authenticate(environ) if self.authenticate is not None else None
            if found is None:
                found = self._bearer(environ.get("HTTP_AUTHORIZATION"))
        except Problem as problem:
            environ[PRINCIPAL] = problem
            raise
        environ[PRINCIPAL] = found
        return found

    def _bearer(self, header: str | None) -> Principal:
        if not header:
            return ANONYMOUS
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("The Authorization header must be: Bearer <API key or JWT>.", invalid=True)
        try:
            if looks_like_key(token):
                if self.keys is None:
                    raise InvalidCredentials("API keys are not accepted here")
                return self.keys.authenticate(token)
            if self.tokens is None or not self.tokens.configured:
                raise InvalidCredentials("not an API key, and no JWT is accepted here")
            return self.tokens.authenticate(token)
        except InvalidCredentials as exc:
            raise Unauthorized(f"The bearer credential is not valid: {exc}.", invalid=True) from None
        except KeysUnavailable:
            log.warning("cannot verify a JWT: the JSON Web Key Set is unavailable")
            raise ServiceUnavailable(
                "The keys that verify tokens cannot be fetched now; retry later.",
                title="Token keys unavailable",
                headers={"Retry-After": "5"},
            ) from None

    def require(self, principal: Principal, resource: str, act: str) -> None:
        """Raise :class:`Unauthorized` (anonymous) or :class:`Forbidden` unless the policy allows ``act``."""
        if self.policy.allows(principal, resource, act):
            return
        if principal.anonymous:
            raise Unauthorized(f"Credentials are needed to {act} {resource}. {HOW_TO}")
        raise Forbidden(f"Your roles do not allow you to {act} {resource}.")

    def scoped(self, resource: Resource, environ: WSGIEnvironment, act: str) -> Resource:
        """``resource`` as the request's caller reaches it with ``act``: its documents and fields.

        Without a rule granting ``act`` (a refused request never gets here, but
        an expanded reference may name a resource its caller may not read), no
        document at all. Worked out once per request, resource and action (the
        cache layer and the view both ask).
        """
        known: dict[tuple[int, str], Resource] = environ.setdefault(SCOPED, {})
        found = known.get((id(resource), act))
        if found is None:
            found = known[(id(resource), act)] = self._scoped(resource, environ, act)
        return found

    def _scoped(self, resource: Resource, environ: WSGIEnvironment, act: str) -> Resource:
        view = self.policy.view(self.principal(environ), resource.name, act)
        if view is None:
            return self._restricted(resource, frozenset(), frozenset(), [])
        if view.unrestricted:
            return resource
        scope = None if view.where is None else [s for s in map(partial(compiled, resource), view.where) if s]
        return self._restricted(resource, view.hidden, view.read_only, scope)

    def _restricted(
        self, resource: Resource, hidden: frozenset[str], read_only: frozenset[str], scope: list[dict[str, Any]] | None
    ) -> Resource:
        key = (resource, hidden, read_only, repr(scope))  # the resource itself: an id could be reused
        with self._lock:
            found = self._variants.get(key)
            if found is not None:
                self._variants.move_to_end(key)
                return found
        made = resource.restricted(hidden, read_only, scope)
        with self._lock:
            self._variants[key] = made
            while len(self._variants) > VARIANTS:
                self._variants.popitem(last=False)
        return made

    def compile(self, resources: Mapping[str, Resource]) -> None:
        """Check every ``where`` of the policy against the fields of the resources it names.

        Raises :class:`ConfigError` naming the rule when a path is unknown or
        cannot be compared, or a literal value does not fit its field.
        """
        sections = {
            "anonymous": self.policy.anonymous,
            **{f"roles.{r}": rules for r, rules in self.policy.roles.items()},
        }
        for section, rules in sections.items():
            for name, rule in rules.items():
                if rule.where is None or name not in resources:
                    continue
                for path, value in rule.where.items():
                    try:
                        _compiled_value(resources[name], path, value if "{" not in str(value) else None)
                    except (UnknownField, InvalidParameter) as exc:
                        raise ConfigError(f"RESTENGINE_POLICY: {section}.{name}.where.{path}: {exc}") from None

    def check(self, environ: WSGIEnvironment, route: Route, method: str) -> Principal:
        """Authenticate the request, and require its action on ``route`` (``_bulk`` operations are the view's)."""
        principal = self.principal(environ)
        act = action(route, method)
        if act is not None:
            self.require(principal, route.resource, act)
        environ[CHECKED] = True
        return principal


def compiled(resource: Resource, where: Mapping[str, Any]) -> dict[str, Any] | None:
    """A ``where`` (client paths -> values, claims filled in) as stored path -> stored value.

    ``None`` when a value cannot be one of its field (a caller's claim that is
    not a valid id, say): that alternative reaches no document.
    """
    out: dict[str, Any] = {}
    for path, value in where.items():
        try:
            db_path, stored = _compiled_value(resource, path, value)
        except (UnknownField, InvalidParameter):
            return None
        out[db_path] = stored
    return out


def _compiled_value(resource: Resource, path: str, value: Any) -> tuple[str, Any]:
    field_path = resolve(resource.doc_cls, path)
    if field_path.in_list:
        raise InvalidParameter(path, "a path through a list cannot scope documents")
    if value is None:
        return field_path.db_path, None
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return field_path.db_path, coerce(field_path.field, text, path)


class Guard:
    """WSGI layer: every request for an API resource is checked before anything else can answer it."""

    def __init__(self, wsgi_app: WSGIApplication, access: Access, resources: Collection[str], url_prefix: str) -> None:
        self.wsgi_app = wsgi_app
        self.access = access
        self.resources = resources
        self.prefix = url_prefix

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        route = route_in(environ, self.prefix)
        if route is not None and route.resource in self.resources:
            try:
                self.access.check(environ, route, environ.get("REQUEST_METHOD", ""))
            except Problem as problem:
                metrics.auth_failure(str(problem.status))
                return refuse(problem, environ, start_response)
        return self.wsgi_app(environ, start_response)


def checked(environ: dict[str, Any]) -> bool:
    """Whether :class:`Guard` (or a view) already allowed this request's action."""
    return bool(environ.get(CHECKED))
