"""Signing keys and a JSON Web Key Set served on 127.0.0.1, for the tests of JWT bearer tokens."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm


class Signer:
    """A private key with its kid, and its public JWK."""

    def __init__(self, kid: str, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> None:
        self.kid = kid
        self.key = key
        self.algorithm = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
        if isinstance(key, rsa.RSAPrivateKey):
            public = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        else:
            public = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
        self.jwk: dict[str, Any] = {**public, "kid": kid, "use": "sig"}

    def sign(self, payload: dict[str, Any], **headers: Any) -> str:
        return jwt.encode(payload, self.key, algorithm=self.algorithm, headers={"kid": self.kid, **headers})

    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


class JwksServer:
    """Serves ``jwks`` (or ``status`` with it) at /jwks.json, counting the requests; ``delay`` stalls each one."""

    def __init__(self) -> None:
        self.jwks: Any = {"keys": []}
        self.status = 200
        self.delay = 0.0
        self.requests = 0
        self.closing = threading.Event()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server._lock:
                    server.requests += 1
                if server.delay:
                    server.closing.wait(server.delay)
                body = json.dumps(server.jwks).encode()
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"

    def serve(self, *signers: Signer) -> None:
        self.jwks = {"keys": [signer.jwk for signer in signers]}

    def stop(self) -> None:
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
