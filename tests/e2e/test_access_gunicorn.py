"""The access check through real gunicorn workers, two instances sharing Redis: a key from the CLI, a JWT."""

from __future__ import annotations

import time
from pathlib import Path

import jwt

from tests.e2e.helpers import call, create_key, gunicorn
from tests.keys import OTHER_SECRET, TEST_SECRET

APP = "restengine.wsgi:app"
POLICY = """
[anonymous]
products = ["read"]

[roles.clerk]
customers = ["read", "create"]

[roles.customer.customers]
actions = ["read"]
where = { code = "{sub}" }
hidden = ["email"]
"""


def test_keys_jwts_and_the_shared_cache_through_two_instances(tmp_path: Path, mongodb_uri: str, redis_url: str) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    env = {
        "MONGODB_URI": mongodb_uri,
        "REDIS_URL": redis_url,
        "RESTENGINE_DOCUMENTS": "tests.legacy_models",
        "RESTENGINE_SECRET_KEY": TEST_SECRET,
        "RESTENGINE_AUTH": "on",
        "RESTENGINE_POLICY": str(policy),
        "RESTENGINE_JWT_SECRET": OTHER_SECRET,
    }
    key = create_key(env, "clerk", "e2e")
    host = {"Host": "api.example"}  # as nginx passes it: entries hold absolute URLs, so the host is in their key
    clerk_key = {**host, "Authorization": f"Bearer {key}"}
    claims = {"sub": "ada", "roles": ["clerk"], "exp": int(time.time()) + 300}
    clerk_jwt = {**host, "Authorization": f"Bearer {jwt.encode(claims, OTHER_SECRET, algorithm='HS256')}"}
    with gunicorn(tmp_path, env, app=APP) as (one, _), gunicorn(tmp_path, env, app=APP) as (two, _):
        status, headers, body = call(one, "POST", "/api/customers", {"code": "GUN001", "name": "Gun"})
        assert (status, headers["www-authenticate"]) == (401, "Bearer"), body
        status, _, body = call(one, "POST", "/api/customers", {"code": "GUN001", "name": "Gun"}, clerk_key)
        assert status == 201, body
        status, headers, _ = call(one, "GET", "/api/customers/GUN001", headers=clerk_key)
        assert (status, headers["x-cache"]) == (200, "miss")
        status, headers, _ = call(two, "GET", "/api/customers/GUN001", headers=clerk_jwt)
        assert (status, headers["x-cache"]) == (200, "hit"), "one entry for every caller the policy lets read"
        status, headers, _ = call(two, "GET", "/api/customers/GUN001", headers=host)
        assert status == 401 and "x-cache" not in headers, "never a cached answer for a caller the policy refuses"
        status, _, _ = call(two, "DELETE", "/api/customers/GUN001", headers=clerk_jwt)
        assert status == 403
        status, headers, _ = call(one, "GET", "/api/customers", headers={"Authorization": "Bearer rek_0_bad"})
        assert status == 401 and headers["www-authenticate"] == 'Bearer error="invalid_token"'

        # Row and field rules: each customer sees its own record, without email, through either instance.
        status, _, _ = call(
            one, "POST", "/api/customers", {"code": "GUN002", "name": "Two", "email": "t@x.io"}, clerk_key
        )
        assert status == 201
        for code in ("GUN001", "GUN002"):
            token = jwt.encode({**claims, "sub": code, "roles": ["customer"]}, OTHER_SECRET, algorithm="HS256")
            mine = {**host, "Authorization": f"Bearer {token}"}
            status, headers, body = call(one, "GET", "/api/customers", headers=mine)
            assert status == 200 and [item["id"] for item in body["items"]] == [code], body
            assert "email" not in body["items"][0] and headers["x-cache"] == "miss", "entries of its own"
            status, headers, again = call(two, "GET", "/api/customers", headers=mine)
            assert (headers["x-cache"], again) == ("hit", body), "the same rule values share entries"


def test_rs256_tokens_from_a_jwks_through_gunicorn(tmp_path: Path, mongodb_uri: str) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from tests.jwks import JwksServer, Signer

    signer = Signer("rsa-e2e", rsa.generate_private_key(public_exponent=65537, key_size=2048))
    stranger = Signer("rsa-e2e", rsa.generate_private_key(public_exponent=65537, key_size=2048))
    server = JwksServer()
    server.serve(signer)
    env = {
        "MONGODB_URI": mongodb_uri,
        "RESTENGINE_DOCUMENTS": "tests.legacy_models",
        "RESTENGINE_SECRET_KEY": TEST_SECRET,
        "RESTENGINE_AUTH": "on",
        "RESTENGINE_JWKS_URL": server.url,
        "RESTENGINE_JWKS_REFRESH_SECONDS": "1",
        "RESTENGINE_JWT_AUDIENCE": "restengine-e2e",
        "RESTENGINE_WORKERS": "1",  # one process: the rotation below is seen by the worker that fetched before
    }
    claims = {"sub": "ada", "roles": ["admin"], "aud": "restengine-e2e", "exp": int(time.time()) + 300}
    try:
        with gunicorn(tmp_path, env, app=APP) as (port, _):
            admin = {"Authorization": f"Bearer {signer.sign(claims)}"}
            status, _, body = call(port, "POST", "/api/customers", {"code": "JWK001", "name": "Jwk"}, admin)
            assert status == 201, body
            forged = {"Authorization": f"Bearer {stranger.sign(claims)}"}
            status, headers, _ = call(port, "POST", "/api/customers", {"code": "JWK002", "name": "No"}, forged)
            assert status == 401 and headers["www-authenticate"] == 'Bearer error="invalid_token"'
            elsewhere = {"Authorization": f"Bearer {signer.sign({**claims, 'aud': 'another-api'})}"}
            status, _, _ = call(port, "POST", "/api/customers", {"code": "JWK003", "name": "No"}, elsewhere)
            assert status == 401
            # Rotation: the identity provider publishes a new key, then signs with it.
            rotated = Signer("rsa-e2e-2", rsa.generate_private_key(public_exponent=65537, key_size=2048))
            server.serve(signer, rotated)
            time.sleep(1.1)  # RESTENGINE_JWKS_REFRESH_SECONDS: the unknown kid may ask for the new set now
            new = {"Authorization": f"Bearer {rotated.sign(claims)}"}
            jwk4 = {"code": "JWK004", "name": "New", "email": "jwk4@example.com"}  # email is unique: one may lack it
            status, _, body = call(port, "POST", "/api/customers", jwk4, new)
            assert status == 201, body
            status, _, _ = call(port, "GET", "/api/customers/JWK004", headers=admin)
            assert status == 200, "the old key still works while the set holds it"
        assert server.requests >= 2
    finally:
        server.stop()
