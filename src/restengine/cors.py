"""CORS for browser clients on other sites: a WSGI layer in front of every other, so that every answer of the
API (a cached hit, a refused credential, an error) carries the headers a browser needs to read it.

Which origin may read what is Flask-CORS's decision (``flask_cors.core``: the same origin matching and header
set as its Flask extension, which cannot see the answers given before Flask runs); this layer adds three
things of its own:

* a preflight (``OPTIONS`` with ``Access-Control-Request-Method``) goes on to the app like any ``OPTIONS``,
  and the methods it allows are the resource's own (the ``Allow`` of that answer), not a fixed list: a
  browser is told up front that ``DELETE`` is not possible where it is not;
* ``Vary: Origin`` on every answer to a request with an ``Origin`` (unless every origin is allowed), so a
  shared HTTP cache never hands one site's answer, allowed or not, to another;
* headers set by the app under ``Access-Control-`` are dropped first: only this layer speaks CORS.

Bearer credentials are sent in ``Authorization``, which a preflight allows; cookies are never read, so
``Access-Control-Allow-Credentials`` is never sent and ``*`` is safe.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from flask_cors.core import ACL_METHODS, ACL_REQUEST_METHOD, get_cors_headers, serialize_options
from werkzeug.datastructures import EnvironHeaders

from restengine.constants import REQUEST_ID_HEADER

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# What a browser script may read of an answer beyond the CORS-safelisted headers.
EXPOSED = ("ETag", "Link", "Location", "X-Total-Count", "Retry-After", "RateLimit", "RateLimit-Policy", "Server-Timing",
           REQUEST_ID_HEADER, "X-Cache", "Allow", "Accept-Patch", "WWW-Authenticate")  # fmt: skip
# What a request may carry: credentials, conditions, the body's type, an idempotency key, a request id.
ALLOWED = ("Authorization", "Content-Type", "If-Match", "If-None-Match", "Idempotency-Key", REQUEST_ID_HEADER)
MAX_AGE = 600  # seconds a browser may keep a preflight's answer


class Cors:
    """WSGI layer: CORS headers on the answers to requests from the allowed ``origins`` (see the module)."""

    def __init__(self, wsgi_app: WSGIApplication, origins: Sequence[str]) -> None:
        self.wsgi_app = wsgi_app
        self.any_origin = tuple(origins) == ("*",)
        self.options = serialize_options(
            {
                "origins": list(origins),
                "methods": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
                "allow_headers": list(ALLOWED),
                "expose_headers": list(EXPOSED),
                "supports_credentials": False,
                "send_wildcard": self.any_origin,  # "*" itself, not the origin echoed: the same answer for all
                "max_age": MAX_AGE,
                "vary_header": False,  # this layer sends Vary: Origin itself, on every answer
            }
        )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if not environ.get("HTTP_ORIGIN"):
            return self.wsgi_app(environ, start_response)
        method = environ.get("REQUEST_METHOD", "")
        request_headers = EnvironHeaders(environ)
        cors = get_cors_headers(self.options, request_headers, method)
        wanted = (request_headers.get(ACL_REQUEST_METHOD) or "").upper()

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            out = [(k, v) for k, v in headers if not k.lower().startswith("access-control-")]
            allow = next((v for k, v in headers if k.lower() == "allow"), None)
            for name, value in cors.items(multi=True):
                if name == ACL_METHODS:
                    if allow is None:
                        continue
                    allowed = [m.strip() for m in allow.split(",") if m.strip()]
                    if wanted not in allowed:
                        continue  # the browser refuses the request: nothing it asked for is allowed
                    value = ", ".join(allowed)
                out.append((name, str(value)))
            if not self.any_origin:
                out = _vary_origin(out)
            return start_response(status, out, exc_info)

        return self.wsgi_app(environ, start)


def _vary_origin(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``headers`` with ``Origin`` in their ``Vary`` (added to an existing one, or a new one)."""
    for i, (name, value) in enumerate(headers):
        if name.lower() == "vary":
            parts = [p.strip() for p in value.split(",") if p.strip()]
            if "origin" not in {p.lower() for p in parts} and "*" not in parts:
                headers[i] = (name, ", ".join([*parts, "Origin"]))
            return headers
    return [*headers, ("Vary", "Origin")]
