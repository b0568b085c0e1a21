"""Bearer JWTs (restengine.auth.tokens): HS256 with a secret, RS256/ES256 from a JWKS served on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, cast

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from restengine.auth import tokens
from restengine.auth.principal import InvalidCredentials
from restengine.auth.tokens import JwtVerifier, KeysUnavailable
from restengine.config import ConfigError, load_settings
from tests.jwks import JwksServer, Signer

SECRET = "jwt-test-only-secret-0123456789abcdef"  # 37 bytes: PyJWT warns below 32
OTHER_SECRET = "another-jwt-test-secret-0123456789abcdef"


def claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "alice", "exp": int(time.time()) + 300, **extra}


def hs256(payload: dict[str, Any], secret: str = SECRET, **headers: Any) -> str:
    return jwt.encode(payload, secret, algorithm="HS256", headers=headers or None)


def reason(verifier: JwtVerifier, token: str) -> str:
    with pytest.raises(InvalidCredentials) as raised:
        verifier.authenticate(token)
    assert token not in str(raised.value)
    return str(raised.value)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# --- keys and the JWKS server ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key() -> Signer:
    return Signer("rsa-1", rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="module")
def rsa_key_2() -> Signer:
    return Signer("rsa-2", rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="module")
def ec_key() -> Signer:
    return Signer("ec-1", ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer()
    yield server
    server.stop()


def jwks_verifier(server: JwksServer, **options: Any) -> JwtVerifier:
    return JwtVerifier(jwks_url=server.url, **options)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/jwks.json"


# --- HS256 ----------------------------------------------------------------------------------------------------


def test_hs256_token_gives_a_jwt_principal() -> None:
    payload = claims(roles=["editor", "admin"], name="Alice")
    principal = JwtVerifier(secret=SECRET).authenticate(hs256(payload))
    assert principal.kind == "jwt"
    assert principal.subject == "alice"
    assert principal.roles == {"editor", "admin"}
    assert dict(principal.claims) == payload
    with pytest.raises(TypeError):
        cast(Any, principal.claims)["sub"] = "mallory"


def test_expired_token_refused() -> None:
    assert reason(JwtVerifier(secret=SECRET), hs256(claims(exp=int(time.time()) - 100))) == "token expired"


def test_leeway_applies_to_exp_nbf_and_iat() -> None:
    now = int(time.time())
    just_expired = hs256(claims(exp=now - 10))
    almost_valid = hs256(claims(nbf=now + 10, iat=now + 10))
    assert JwtVerifier(secret=SECRET).authenticate(just_expired).subject == "alice"  # 30 s by default
    assert JwtVerifier(secret=SECRET).authenticate(almost_valid).subject == "alice"
    assert reason(JwtVerifier(secret=SECRET, leeway=0), just_expired) == "token expired"
    assert reason(JwtVerifier(secret=SECRET, leeway=0), almost_valid) == "token not yet valid"


def test_not_yet_valid_token_refused() -> None:
    assert reason(JwtVerifier(secret=SECRET), hs256(claims(nbf=int(time.time()) + 100))) == "token not yet valid"


def test_wrong_secret_refused() -> None:
    assert reason(JwtVerifier(secret=SECRET), hs256(claims(), secret=OTHER_SECRET)) == "invalid token"


def test_tampered_payload_refused() -> None:
    header, _, signature = hs256(claims()).split(".")
    forged = b64(json.dumps(claims(sub="root")).encode())
    assert reason(JwtVerifier(secret=SECRET), f"{header}.{forged}.{signature}") == "invalid token"


def test_audience_checked_only_when_set() -> None:
    verifier = JwtVerifier(secret=SECRET, audience="restengine")
    assert verifier.authenticate(hs256(claims(aud="restengine"))).subject == "alice"
    assert verifier.authenticate(hs256(claims(aud=["other", "restengine"]))).subject == "alice"
    assert reason(verifier, hs256(claims(aud="other"))) == "wrong audience"
    assert reason(verifier, hs256(claims())) == "token lacks the 'aud' claim"
    assert JwtVerifier(secret=SECRET).authenticate(hs256(claims(aud="anything"))).subject == "alice"


def test_issuer_checked_only_when_set() -> None:
    verifier = JwtVerifier(secret=SECRET, issuer="https://idp.example")
    assert verifier.authenticate(hs256(claims(iss="https://idp.example"))).subject == "alice"
    assert reason(verifier, hs256(claims(iss="https://evil.example"))) == "wrong issuer"
    assert reason(verifier, hs256(claims())) == "token lacks the 'iss' claim"
    assert JwtVerifier(secret=SECRET).authenticate(hs256(claims(iss="https://evil.example"))).subject == "alice"


def test_sub_and_exp_are_required() -> None:
    verifier = JwtVerifier(secret=SECRET)
    assert reason(verifier, hs256({"exp": int(time.time()) + 300})) == "token lacks the 'sub' claim"
    assert reason(verifier, hs256({"sub": "alice"})) == "token lacks the 'exp' claim"
    assert reason(verifier, hs256(claims(sub=42))) == "invalid subject"
    assert reason(verifier, hs256(claims(sub=""))) == "invalid subject"
    assert reason(verifier, hs256(claims(exp="soon"))) == "invalid token"


def test_alg_none_refused() -> None:
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    unsigned = f"{header}.{b64(json.dumps(claims()).encode())}."
    assert reason(JwtVerifier(secret=SECRET), unsigned) == "invalid token"
    assert reason(JwtVerifier(secret=SECRET), unsigned + "c2ln") == "invalid token"


def test_only_hs256_with_the_secret() -> None:
    long_secret = SECRET * 2  # 64 bytes at least for HS512, or PyJWT warns
    token = jwt.encode(claims(), long_secret, algorithm="HS512")
    assert reason(JwtVerifier(secret=long_secret), token) == "invalid token"


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "e30.e30.", "ä.b.c", "Bearer x"])
def test_malformed_tokens_refused(token: str) -> None:
    with pytest.raises(InvalidCredentials, match=r"^invalid token$"):
        JwtVerifier(secret=SECRET).authenticate(token)


@pytest.mark.parametrize(
    ("value", "roles"),
    [
        (["editor", "admin"], {"editor", "admin"}),
        (["editor", ""], {"editor"}),
        ([], set()),
        ("editor admin", {"editor", "admin"}),
        ("  editor\tadmin  ", {"editor", "admin"}),
        ("editor", {"editor"}),
        ("", set()),
        (42, set()),
        ({"editor": True}, set()),
        (["editor", 1], set()),
        (None, set()),
    ],
)
def test_roles_claim_variants(value: Any, roles: set[str]) -> None:
    principal = JwtVerifier(secret=SECRET).authenticate(hs256(claims(roles=value)))
    assert principal.roles == roles


def test_roles_from_the_configured_claim() -> None:
    verifier = JwtVerifier(secret=SECRET, roles_claim="https://example.com/roles")
    token = hs256(claims(roles=["ignored"], **{"https://example.com/roles": ["admin"]}))
    assert verifier.authenticate(token).roles == {"admin"}
    assert JwtVerifier(secret=SECRET).authenticate(hs256(claims())).roles == frozenset()


def test_short_secret_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="RESTENGINE_JWT_SECRET"):
        JwtVerifier(secret="x" * 31)
    assert JwtVerifier(secret="x" * 32).configured


def test_configured_and_from_settings() -> None:
    assert not JwtVerifier().configured
    assert JwtVerifier(jwks_url="https://idp.example/jwks.json").configured
    settings = load_settings(
        environ={
            "RESTENGINE_JWT_SECRET": SECRET,
            "RESTENGINE_JWT_AUDIENCE": "restengine",
            "RESTENGINE_JWT_ISSUER": "https://idp.example",
            "RESTENGINE_JWT_ROLES_CLAIM": "groups",
        }
    )
    verifier = JwtVerifier.from_settings(settings)
    assert verifier.configured
    token = hs256(claims(aud="restengine", iss="https://idp.example", groups="admin"))
    assert verifier.authenticate(token).roles == {"admin"}
    assert reason(verifier, hs256(claims(aud="restengine", iss="https://other.example"))) == "wrong issuer"
    assert not JwtVerifier.from_settings(load_settings(environ={})).configured
    with pytest.raises(ConfigError, match="RESTENGINE_JWT_SECRET"):
        JwtVerifier.from_settings(load_settings(environ={"RESTENGINE_JWT_SECRET": "short"}))


def test_jwks_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="RESTENGINE_JWKS_URL"):
        JwtVerifier(jwks_url="file:///etc/passwd")


def test_tokens_need_the_configured_kind_of_key(rsa_key: Signer) -> None:
    assert reason(JwtVerifier(jwks_url=closed_port_url()), hs256(claims())) == "invalid token"
    assert reason(JwtVerifier(secret=SECRET), rsa_key.sign(claims())) == "invalid token"
    assert reason(JwtVerifier(), hs256(claims())) == "invalid token"


# --- RS256 / ES256 from a JWKS --------------------------------------------------------------------------------


def test_rs256_and_es256_from_jwks(jwks_server: JwksServer, rsa_key: Signer, ec_key: Signer) -> None:
    jwks_server.serve(rsa_key, ec_key)
    verifier = jwks_verifier(jwks_server)
    assert verifier.authenticate(rsa_key.sign(claims(roles="reader"))).roles == {"reader"}
    assert verifier.authenticate(ec_key.sign(claims(sub="bob"))).subject == "bob"
    assert jwks_server.requests == 1  # the key set is fetched once, then held


def test_secret_and_jwks_together(jwks_server: JwksServer, rsa_key: Signer) -> None:
    jwks_server.serve(rsa_key)
    verifier = JwtVerifier(secret=SECRET, jwks_url=jwks_server.url)
    assert verifier.authenticate(hs256(claims(sub="hs"))).subject == "hs"
    assert verifier.authenticate(rsa_key.sign(claims(sub="rs"))).subject == "rs"


def test_jwks_tokens_are_checked_like_any_other(jwks_server: JwksServer, rsa_key: Signer, rsa_key_2: Signer) -> None:
    jwks_server.serve(rsa_key)
    verifier = jwks_verifier(jwks_server, audience="restengine")
    assert reason(verifier, rsa_key.sign(claims(aud="restengine", exp=int(time.time()) - 100))) == "token expired"
    assert reason(verifier, rsa_key.sign(claims(aud="other"))) == "wrong audience"
    # Signed by another key that claims rsa-1's kid.
    impostor = jwt.encode(claims(aud="restengine"), rsa_key_2.key, algorithm="RS256", headers={"kid": "rsa-1"})
    assert reason(verifier, impostor) == "invalid token"
    # No kid: which key would verify it?
    no_kid = jwt.encode(claims(aud="restengine"), rsa_key.key, algorithm="RS256")
    assert reason(verifier, no_kid) == "invalid token"


def test_hs256_with_the_public_key_as_secret_refused(jwks_server: JwksServer, rsa_key: Signer) -> None:
    """The algorithm-confusion attack: HMAC-sign a token with the (public) RSA key the JWKS publishes."""
    jwks_server.serve(rsa_key)
    forged_claims = claims(sub="mallory", roles=["admin"])
    forgeries = []
    for public_key in (rsa_key.public_pem(), json.dumps(rsa_key.jwk).encode()):
        header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": rsa_key.kid}).encode())
        body = b64(json.dumps(forged_claims).encode())
        signature = b64(hmac.new(public_key, f"{header}.{body}".encode(), hashlib.sha256).digest())
        forgeries.append(f"{header}.{body}.{signature}")
    for verifier in (jwks_verifier(jwks_server), JwtVerifier(secret=SECRET, jwks_url=jwks_server.url)):
        assert verifier.authenticate(rsa_key.sign(claims())).subject == "alice"  # the key is there
        for forged in forgeries:
            assert reason(verifier, forged) == "invalid token"


def test_algorithm_pinned_to_the_key_type(jwks_server: JwksServer, rsa_key: Signer, ec_key: Signer) -> None:
    jwks_server.serve(rsa_key, ec_key)
    verifier = jwks_verifier(jwks_server)
    # An RS256 token naming the EC key: the EC key verifies ES256 only.
    rs_on_ec = jwt.encode(claims(), rsa_key.key, algorithm="RS256", headers={"kid": ec_key.kid})
    assert reason(verifier, rs_on_ec) == "invalid token"
    es_on_rsa = jwt.encode(claims(), ec_key.key, algorithm="ES256", headers={"kid": rsa_key.kid})
    assert reason(verifier, es_on_rsa) == "invalid token"
    # Other asymmetric algorithms are not accepted even with a matching key.
    ps256 = jwt.encode(claims(), rsa_key.key, algorithm="PS256", headers={"kid": rsa_key.kid})
    assert reason(verifier, ps256) == "invalid token"


def test_symmetric_and_unsuitable_jwks_keys_ignored(jwks_server: JwksServer, rsa_key: Signer) -> None:
    oct_key = {"kty": "oct", "kid": "sym", "k": b64(SECRET.encode())}
    encryption_key = {**rsa_key.jwk, "kid": "enc", "use": "enc"}
    wrong_alg = {**rsa_key.jwk, "kid": "ps", "alg": "PS256"}
    jwks_server.jwks = {"keys": [oct_key, encryption_key, wrong_alg, "junk", rsa_key.jwk]}
    verifier = jwks_verifier(jwks_server)
    assert reason(verifier, hs256(claims(), kid="sym")) == "invalid token"
    assert reason(verifier, rsa_key.sign(claims(), kid="enc")) == "unknown signing key"
    assert reason(verifier, rsa_key.sign(claims(), kid="ps")) == "unknown signing key"
    assert verifier.authenticate(rsa_key.sign(claims())).subject == "alice"


def test_short_rsa_key_refused(jwks_server: JwksServer) -> None:
    weak = Signer("weak", rsa.generate_private_key(public_exponent=65537, key_size=1024))
    jwks_server.serve(weak)
    with pytest.warns(jwt.InsecureKeyLengthWarning):
        token = jwt.encode(claims(), weak.key, algorithm="RS256", headers={"kid": "weak"})
    assert reason(jwks_verifier(jwks_server), token) == "invalid token"


def test_key_rotation_refetches_once(jwks_server: JwksServer, rsa_key: Signer, rsa_key_2: Signer) -> None:
    jwks_server.serve(rsa_key)
    verifier = jwks_verifier(jwks_server, jwks_refresh_interval=0)
    assert verifier.authenticate(rsa_key.sign(claims())).subject == "alice"
    assert jwks_server.requests == 1
    jwks_server.serve(rsa_key, rsa_key_2)  # the identity provider publishes a new key
    assert verifier.authenticate(rsa_key_2.sign(claims(sub="bob"))).subject == "bob"
    assert jwks_server.requests == 2
    assert verifier.authenticate(rsa_key.sign(claims(sub="carol"))).subject == "carol"
    assert verifier.authenticate(rsa_key_2.sign(claims(sub="dave"))).subject == "dave"
    assert jwks_server.requests == 2


def test_unknown_kids_refetch_at_most_once_per_interval(jwks_server: JwksServer, rsa_key: Signer) -> None:
    jwks_server.serve(rsa_key)
    verifier = jwks_verifier(jwks_server, jwks_refresh_interval=0.5)
    assert verifier.authenticate(rsa_key.sign(claims())).subject == "alice"
    for _ in range(20):
        assert reason(verifier, rsa_key.sign(claims(), kid=uuid.uuid4().hex)) == "unknown signing key"
    assert jwks_server.requests == 1  # within the interval of the first fetch: none
    time.sleep(0.6)
    for _ in range(20):
        assert reason(verifier, rsa_key.sign(claims(), kid=uuid.uuid4().hex)) == "unknown signing key"
    assert jwks_server.requests == 2  # one per interval


def test_concurrent_unknown_kids_fetch_once(jwks_server: JwksServer, rsa_key: Signer) -> None:
    jwks_server.serve(rsa_key)
    jwks_server.delay = 0.2  # every thread arrives while the first fetch is under way
    verifier = jwks_verifier(jwks_server, jwks_refresh_interval=60)
    forged = [rsa_key.sign(claims(), kid=uuid.uuid4().hex) for _ in range(16)]
    outcomes: list[str] = []

    def attempt(token: str) -> None:
        try:
            verifier.authenticate(token)
        except InvalidCredentials as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=attempt, args=(token,)) for token in forged]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert outcomes == ["unknown signing key"] * 16
    assert jwks_server.requests == 1


def test_rotated_key_within_the_interval_waits_for_the_next_fetch(
    jwks_server: JwksServer, rsa_key: Signer, rsa_key_2: Signer
) -> None:
    jwks_server.serve(rsa_key)
    verifier = jwks_verifier(jwks_server, jwks_refresh_interval=0.4)
    assert verifier.authenticate(rsa_key.sign(claims())).subject == "alice"
    jwks_server.serve(rsa_key, rsa_key_2)
    new_token = rsa_key_2.sign(claims(sub="bob"))
    assert reason(verifier, new_token) == "unknown signing key"
    time.sleep(0.5)
    assert verifier.authenticate(new_token).subject == "bob"
    assert jwks_server.requests == 2


def test_jwks_down_is_keys_unavailable(rsa_key: Signer) -> None:
    verifier = JwtVerifier(jwks_url=closed_port_url(), jwks_timeout=1)
    with pytest.raises(KeysUnavailable):
        verifier.authenticate(rsa_key.sign(claims()))


@pytest.mark.parametrize("failure", ["status", "not a key set", "no usable key", "slow"])
def test_jwks_failures_are_keys_unavailable_and_rate_limited(
    jwks_server: JwksServer, rsa_key: Signer, failure: str
) -> None:
    if failure == "status":
        jwks_server.status = 500
    elif failure == "not a key set":
        jwks_server.jwks = ["not", "a", "key", "set"]
    elif failure == "no usable key":
        jwks_server.jwks = {"keys": [{"kty": "oct", "kid": "sym", "k": b64(SECRET.encode())}]}
    else:
        jwks_server.serve(rsa_key)
        jwks_server.delay = 2.0
    verifier = jwks_verifier(jwks_server, jwks_timeout=0.3, jwks_refresh_interval=60)
    token = rsa_key.sign(claims())
    started = time.monotonic()
    for _ in range(5):
        with pytest.raises(KeysUnavailable) as raised:
            verifier.authenticate(token)
        assert token not in str(raised.value)
    assert time.monotonic() - started < 1.5  # one fetch (timed out at 0.3 s), then none within the interval
    assert jwks_server.requests == 1


def test_keys_held_survive_a_jwks_outage(jwks_server: JwksServer, rsa_key: Signer) -> None:
    jwks_server.serve(rsa_key)
    verifier = jwks_verifier(jwks_server, jwks_refresh_interval=0, jwks_max_age=0.2, jwks_timeout=0.5)
    assert verifier.authenticate(rsa_key.sign(claims())).subject == "alice"
    jwks_server.status = 503
    time.sleep(0.3)  # the key set is stale: the refresh fails, the key held still verifies
    assert verifier.authenticate(rsa_key.sign(claims(sub="bob"))).subject == "bob"
    assert jwks_server.requests == 2
    with pytest.raises(KeysUnavailable):  # a kid we do not hold cannot be ruled out while the JWKS is down
        verifier.authenticate(rsa_key.sign(claims(), kid="new"))


def test_stale_key_set_refreshed_and_withdrawn_keys_refused(
    jwks_server: JwksServer, rsa_key: Signer, rsa_key_2: Signer
) -> None:
    jwks_server.serve(rsa_key)
    verifier = jwks_verifier(jwks_server, jwks_refresh_interval=0.2, jwks_max_age=0.2)
    token = rsa_key.sign(claims())
    assert verifier.authenticate(token).subject == "alice"
    jwks_server.serve(rsa_key_2)  # rsa-1 withdrawn
    assert verifier.authenticate(token).subject == "alice"  # remembered, and the key set is fresh
    time.sleep(0.3)
    assert reason(verifier, token) == "unknown signing key"  # neither the token nor the key set is kept longer
    assert jwks_server.requests == 2


# --- the cache of verified tokens -----------------------------------------------------------------------------


@pytest.fixture
def decode_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real_decode = jwt.decode

    def counting_decode(token: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(token)
        return real_decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting_decode)
    return calls


def test_verified_token_is_not_verified_again(decode_calls: list[str]) -> None:
    verifier = JwtVerifier(secret=SECRET)
    token = hs256(claims(roles=["admin"]))
    first = verifier.authenticate(token)
    for _ in range(10):
        assert verifier.authenticate(token) is first
    assert decode_calls == [token]


def test_jwks_token_is_not_verified_again(jwks_server: JwksServer, ec_key: Signer, decode_calls: list[str]) -> None:
    jwks_server.serve(ec_key)
    verifier = jwks_verifier(jwks_server)
    token = ec_key.sign(claims())
    for _ in range(5):
        assert verifier.authenticate(token).subject == "alice"
    assert decode_calls == [token]


def test_remembered_token_not_used_past_its_exp(decode_calls: list[str]) -> None:
    verifier = JwtVerifier(secret=SECRET)
    exp = int(time.time()) + 300
    token = hs256(claims(exp=exp))
    verifier.authenticate(token)
    verifier.clock = lambda: exp - 1
    verifier.authenticate(token)
    assert len(decode_calls) == 1
    verifier.clock = lambda: exp
    verifier.authenticate(token)  # not taken from the cache: verified again (PyJWT's clock says it is valid)
    assert len(decode_calls) == 2


def test_expired_token_refused_after_being_remembered() -> None:
    verifier = JwtVerifier(secret=SECRET, leeway=0)
    exp = int(time.time()) + 1
    token = hs256(claims(exp=exp))
    assert verifier.authenticate(token).subject == "alice"
    time.sleep(max(0.0, exp - time.time()) + 0.05)
    assert reason(verifier, token) == "token expired"


def test_failures_are_not_remembered(decode_calls: list[str]) -> None:
    verifier = JwtVerifier(secret=SECRET)
    token = hs256(claims(), secret=OTHER_SECRET)
    reason(verifier, token)
    reason(verifier, token)
    assert len(decode_calls) == 2
    assert len(verifier.cache) == 0


def test_cache_is_bounded_oldest_dropped_first(decode_calls: list[str]) -> None:
    verifier = JwtVerifier(secret=SECRET, cache_size=2)
    first, second, third = (hs256(claims(sub=name)) for name in ("a", "b", "c"))
    for token in (first, second, third):
        verifier.authenticate(token)
    assert len(verifier.cache) == 2
    verifier.authenticate(third)
    verifier.authenticate(second)
    assert len(decode_calls) == 3
    verifier.authenticate(first)  # dropped: verified again
    assert decode_calls[-1] == first and len(decode_calls) == 4


def test_cache_can_be_turned_off(decode_calls: list[str]) -> None:
    verifier = JwtVerifier(secret=SECRET, cache_size=0)
    token = hs256(claims())
    verifier.authenticate(token)
    verifier.authenticate(token)
    assert len(decode_calls) == 2


def test_cache_is_thread_safe() -> None:
    verifier = JwtVerifier(secret=SECRET, cache_size=50)
    subjects = {hs256(claims(sub=f"user-{i}")): f"user-{i}" for i in range(200)}
    tokens_ = list(subjects)
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(400):
                token = tokens_[(i * 7 + offset) % len(tokens_)]
                assert verifier.authenticate(token).subject == subjects[token]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(verifier.cache) <= 50


def test_module_constants_pin_algorithms() -> None:
    assert tokens.SECRET_ALGORITHM == "HS256"
    assert dict(tokens.KEY_ALGORITHMS) == {"RSA": "RS256", "EC": "ES256"}
