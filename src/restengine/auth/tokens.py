"""Bearer JWTs: verify a token (PyJWT), remember it until it expires, fetch the JWKS keys that sign it.

:class:`JwtVerifier` turns the token of ``Authorization: Bearer <token>`` into a :class:`Principal`
(``kind="jwt"``) or raises:

* :class:`InvalidCredentials` (401): the token is malformed, badly signed, expired, not yet valid, for another
  audience or issuer, lacks ``exp`` or ``sub``, or names a key the JWKS does not have. ``str()`` is a short
  reason (``"invalid token"``, ``"token expired"``, ...) that never repeats the token or its header.
* :class:`KeysUnavailable` (503 with ``Retry-After``): the token names a key we do not hold and the JWKS cannot
  be fetched (down, too slow, not a key set). The client is not at fault, so it is not a 401.

Algorithms are pinned to keys, never taken from the token: ``HS256`` verifies only with ``RESTENGINE_JWT_SECRET``;
``RS256`` only with a JWKS ``RSA`` key and ``ES256`` only with a JWKS ``EC`` P-256 key (the one algorithm of the
key the token's ``kid`` names; a token for a JWKS key must carry a ``kid``). ``none``, every other algorithm,
symmetric (``oct``) keys in the JWKS and a token asking for ``HS256`` with a public key (the algorithm-confusion
attack) are all ``"invalid token"``.

Decisions:

* ``exp`` and ``sub`` are required: a bearer token without an expiry is refused (``"token lacks the 'exp'
  claim"``), so a leaked token cannot stay valid forever; ``sub`` must be a non-empty string. ``exp``, ``nbf`` and
  ``iat`` are checked with ``leeway`` seconds (30) of clock skew. ``aud`` and ``iss`` are checked only when
  ``audience`` / ``issuer`` are set (an ``aud`` in the token is ignored otherwise).
* Roles come from the claim ``roles_claim`` (``roles``; a claim name, not a path): a list of strings (empty
  strings dropped), or one string of roles separated by whitespace (as OAuth's ``scope``): ``"admin editor"``.
  Anything else (a number, an object, a list with a non-string) gives no roles.
* Verified tokens are remembered in the process, keyed by the token's SHA-256, until the token's ``exp`` but at
  most ``jwks_max_age`` seconds (so a key withdrawn from the JWKS stops working within about twice that),
  bounded to ``cache_size`` entries (the oldest dropped first). A remembered token costs a hash and a dict
  lookup; it is never used past its ``exp``. A token that fails is not remembered.
* The JWKS (:class:`JwksKeys`) is fetched on the first token that needs it, again when a token names an unknown
  ``kid`` and when the set is older than ``jwks_max_age`` — but at most once per ``jwks_refresh_interval``
  seconds, whether the fetch succeeded or not: a flood of tokens with made-up ``kid`` values, or a JWKS server
  that is down, costs one request per interval. A key rotated in within the interval after a fetch is refused
  (``"unknown signing key"``) until the next one. When a refresh fails, the keys already held keep working.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import types
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

import jwt
from jwt.exceptions import InvalidSubjectError
from jwt.types import Options

from restengine.auth.principal import InvalidCredentials, Principal
from restengine.config import MIN_SECRET_BYTES, ConfigError

if TYPE_CHECKING:
    from restengine.config import Settings

log = logging.getLogger(__name__)

SECRET_ALGORITHM = "HS256"
"""The one algorithm the shared secret verifies."""

KEY_ALGORITHMS: Mapping[str, str] = types.MappingProxyType({"RSA": "RS256", "EC": "ES256"})
"""JWKS key type (``kty``) to the one algorithm its keys verify; keys of other types are ignored."""

EC_CURVE = "P-256"
"""The curve of ``ES256``: an ``EC`` key on another curve is ignored."""

REQUIRED_CLAIMS = ("exp", "sub")


class KeysUnavailable(Exception):
    """The JWKS cannot be fetched, so a token signed by one of its keys cannot be verified now.

    Not the client's fault: the HTTP layer answers 503 with ``Retry-After``. ``str()`` is a short reason.
    """


class JwksKeys:
    """The signing keys of one JWKS URL, by ``kid``: fetched lazily, refreshed at a bounded rate. Thread-safe."""

    def __init__(self, url: str, *, timeout: float, refresh_interval: float, max_age: float) -> None:
        if urlsplit(url).scheme.lower() not in {"http", "https"}:
            raise ConfigError(f"RESTENGINE_JWKS_URL: must be an http:// or https:// URL, got {url!r}")
        if timeout <= 0 or refresh_interval < 0 or max_age <= 0:
            raise ValueError("JWKS timeout and max age must be > 0, the refresh interval >= 0")
        self.url = url
        self.refresh_interval = refresh_interval
        self.max_age = max_age
        # Only its fetch is used (http(s) only, no redirects, a timeout); the caching is ours.
        self._client = jwt.PyJWKClient(url, cache_jwk_set=False, timeout=timeout)
        self._keys: Mapping[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None  # time.monotonic() of the last successful fetch
        self._attempted_at: float | None = None  # of the last fetch, successful or not
        self._failed = False  # the last fetch failed
        self._lock = threading.Lock()  # held while fetching: one fetch at a time

    def key(self, kid: str) -> jwt.PyJWK:
        """The key named ``kid``; raises :class:`InvalidCredentials` if the JWKS has none, :class:`KeysUnavailable`
        if it cannot be fetched."""
        fetched_at = self._fetched_at
        if (
            fetched_at is not None
            and time.monotonic() - fetched_at >= self.max_age
            and self._lock.acquire(blocking=False)  # another thread refreshing: use the keys held meanwhile
        ):
            try:
                if self._may_fetch():
                    self._fetch()
            finally:
                self._lock.release()
        key = self._keys.get(kid)
        if key is not None:
            return key
        with self._lock:
            key = self._keys.get(kid)  # another thread may have fetched it while this one waited
            if key is None and self._may_fetch():
                self._fetch()
                key = self._keys.get(kid)
            failed = self._failed
        if key is not None:
            return key
        if failed:
            raise KeysUnavailable("cannot fetch the keys that verify the token")
        raise InvalidCredentials("unknown signing key")

    def _may_fetch(self) -> bool:
        return self._attempted_at is None or time.monotonic() - self._attempted_at >= self.refresh_interval

    def _fetch(self) -> None:
        """Fetch the key set (under the lock); on failure keep the keys held and log why."""
        self._attempted_at = time.monotonic()
        try:
            keys = signing_keys(self._client.fetch_data())
        except (jwt.PyJWTError, OSError, ValueError) as exc:  # connection, HTTP status, timeout, not JSON, no keys
            self._failed = True
            log.warning("cannot fetch the JWKS from %s: %s", self.url, exc)
            return
        self._keys = keys
        self._fetched_at = time.monotonic()
        self._failed = False


def signing_keys(jwks: Any) -> dict[str, jwt.PyJWK]:
    """The usable signing keys of a JWKS document by ``kid``: RSA (RS256) and EC P-256 (ES256) keys with a ``kid``,
    meant for signatures, whose ``alg`` (if any) is that algorithm. Raises :class:`ValueError` when there are none.
    """
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise ValueError("not a JSON Web Key Set")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in jwks["keys"]:
        if not isinstance(entry, dict):
            continue
        kid, kty = entry.get("kid"), entry.get("kty")
        algorithm = KEY_ALGORITHMS.get(kty) if isinstance(kty, str) else None
        if (
            not isinstance(kid, str)
            or algorithm is None
            or entry.get("use", "sig") != "sig"
            or entry.get("alg", algorithm) != algorithm
            or (kty == "EC" and entry.get("crv") != EC_CURVE)
        ):
            continue
        try:
            keys[kid] = jwt.PyJWK(entry, algorithm)
        except jwt.PyJWTError:
            continue
    if not keys:
        raise ValueError("no RS256 or ES256 signing key with a kid")
    return keys


class _Entry(NamedTuple):
    principal: Principal
    until: float  # wall-clock time after which the entry is not used


class VerifiedTokens:
    """Principals of verified tokens by the token's SHA-256 digest, each until a time; bounded, oldest dropped first.
    Thread-safe."""

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"cache size must be >= 0, got {size}")
        self.size = size
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: bytes, now: float) -> Principal | None:
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            if entry.until <= now:
                del self._entries[digest]
                return None
            return entry.principal

    def put(self, digest: bytes, principal: Principal, until: float, now: float) -> None:
        if until <= now or self.size == 0:
            return
        with self._lock:
            self._entries[digest] = _Entry(principal, until)
            self._entries.move_to_end(digest)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)


class JwtVerifier:
    """Verifies bearer JWTs into principals; one per process, shared by its threads (see the module's docstring)."""

    def __init__(
        self,
        *,
        secret: str | None = None,
        jwks_url: str | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        roles_claim: str = "roles",
        leeway: float = 30,
        jwks_refresh_interval: float = 30.0,
        jwks_timeout: float = 2.0,
        cache_size: int = 10_000,
        jwks_max_age: float = 300.0,
    ) -> None:
        self._secret: bytes | None = None
        if secret:
            data = secret.encode("utf-8")
            if len(data) < MIN_SECRET_BYTES:
                raise ConfigError(
                    f"RESTENGINE_JWT_SECRET: must be at least {MIN_SECRET_BYTES} bytes of random text, got {len(data)}"
                )
            self._secret = data
        self._jwks = (
            JwksKeys(jwks_url, timeout=jwks_timeout, refresh_interval=jwks_refresh_interval, max_age=jwks_max_age)
            if jwks_url
            else None
        )
        if leeway < 0:
            raise ValueError(f"leeway must be >= 0, got {leeway}")
        self.audience = audience
        self.issuer = issuer
        self.roles_claim = roles_claim
        self.leeway = leeway
        self.cache_max_age = jwks_max_age
        self.cache = VerifiedTokens(cache_size)
        self.clock: Callable[[], float] = time.time
        """The wall clock a remembered token's ``exp`` is compared with."""
        self._options: Options = {
            "require": list(REQUIRED_CLAIMS),
            "verify_aud": audience is not None,
            "enforce_minimum_key_length": True,  # a short key is an error, not a warning
        }

    @classmethod
    def from_settings(cls, settings: Settings) -> JwtVerifier:
        return cls(
            secret=settings.jwt_secret,
            jwks_url=settings.jwks_url,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            roles_claim=settings.jwt_roles_claim,
            jwks_refresh_interval=settings.jwks_refresh_seconds,
        )

    @property
    def configured(self) -> bool:
        """A secret or a JWKS URL is set: without either no token can be valid."""
        return self._secret is not None or self._jwks is not None

    @property
    def jwks(self) -> JwksKeys | None:
        return self._jwks

    def authenticate(self, token: str) -> Principal:
        """The principal ``token`` proves; raises :class:`InvalidCredentials` or :class:`KeysUnavailable`."""
        if not token or not token.isascii():
            raise InvalidCredentials("invalid token")
        digest = hashlib.sha256(token.encode("ascii")).digest()
        now = self.clock()
        principal = self.cache.get(digest, now)
        if principal is not None:
            return principal
        claims = self._verify(token)
        principal = Principal(
            "jwt", subject=claims["sub"], roles=self.roles(claims), claims=types.MappingProxyType(claims)
        )
        self.cache.put(digest, principal, until=min(float(claims["exp"]), now + self.cache_max_age), now=now)
        return principal

    def roles(self, claims: Mapping[str, Any]) -> frozenset[str]:
        """The roles the claims give: a list of strings, or one whitespace-separated string; else none."""
        value = claims.get(self.roles_claim)
        if isinstance(value, str):
            return frozenset(value.split())
        if isinstance(value, list) and all(isinstance(role, str) for role in value):
            return frozenset(role for role in value if role)
        return frozenset()

    def _verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidCredentials("invalid token") from None
        algorithm = header.get("alg")
        key: Any
        if algorithm == SECRET_ALGORITHM and self._secret is not None:
            key, algorithms = self._secret, [SECRET_ALGORITHM]
        elif algorithm in KEY_ALGORITHMS.values() and self._jwks is not None:
            kid = header.get("kid")
            if not isinstance(kid, str):
                raise InvalidCredentials("invalid token")
            jwk = self._jwks.key(kid)
            key, algorithms = jwk.key, [jwk.algorithm_name]  # the key's algorithm, whatever the token asks for
        else:  # "none", another algorithm, or one nothing is configured for
            raise InvalidCredentials("invalid token")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                options=self._options,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
            )
        except jwt.ExpiredSignatureError:
            raise InvalidCredentials("token expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidCredentials("token not yet valid") from None
        except jwt.InvalidAudienceError:
            raise InvalidCredentials("wrong audience") from None
        except jwt.InvalidIssuerError:
            raise InvalidCredentials("wrong issuer") from None
        except jwt.MissingRequiredClaimError as exc:  # exp, sub, or aud / iss when they are checked
            raise InvalidCredentials(f"token lacks the {exc.claim!r} claim") from None
        except InvalidSubjectError:
            raise InvalidCredentials("invalid subject") from None
        except jwt.PyJWTError:  # bad signature, algorithm not allowed for the key, malformed claims
            raise InvalidCredentials("invalid token") from None
        if not claims["sub"]:
            raise InvalidCredentials("invalid subject")
        return claims
