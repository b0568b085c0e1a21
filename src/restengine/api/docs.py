"""The documentation page: Swagger UI rendering the service's OpenAPI document, with no CDN.

Swagger UI's built files come from the ``flask-swagger-ui`` package's ``dist``
directory and are served by the app itself, so the page works offline and
loads nothing from a third party. Only those files are used, not the
package's blueprint: its page starts Swagger UI from an inline script, which a
strict Content-Security-Policy (``script-src 'self'``) forbids. Our page
carries the spec's URL in a ``data-`` attribute and a small script of ours,
served beside Swagger UI's, starts it.
"""

from __future__ import annotations

import hashlib
from html import escape
from importlib import resources
from typing import TYPE_CHECKING

from flask import Blueprint, Flask, Response, request, send_from_directory, url_for

if TYPE_CHECKING:
    from restengine.api.registry import Api

DIST = resources.files("flask_swagger_ui").joinpath("dist")

# Starts Swagger UI on the element that names the spec. ``validatorUrl: null``
# keeps Swagger UI from fetching a badge from validator.swagger.io.
INIT_SCRIPT = "restengine-docs.js"
INIT_JS = b"""window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.specUrl,
    domNode: root,
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
"""

# Asset URLs carry this token, so they can be cached for a year and an upgrade
# of Swagger UI (or of the script above) still reaches every browser at once.
ASSET_VERSION = hashlib.sha256(DIST.joinpath("VERSION").read_bytes() + INIT_JS).hexdigest()[:12]

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" type="image/png" href="{icon}">
<link rel="stylesheet" href="{index_css}">
<link rel="stylesheet" href="{css}">
</head>
<body>
<div id="swagger-ui" data-spec-url="{spec}"></div>
<script src="{bundle}"></script>
<script src="{init}"></script>
</body>
</html>
"""

# Only this app's own files may load, scripts included, and no inline script
# runs; the spec and "Try it out" requests go to the app itself. Swagger UI
# draws its icons as data: SVG images, the one exception.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)
LONG_CACHE = "public, max-age=31536000, immutable"
DEFAULT_TITLE = "RestEngine API"  # the OpenAPI document's title unless ``openapi_info`` names the service


class Docs:
    """The page at ``api.docs_path`` and its assets under ``<docs_path>/assets/``."""

    def __init__(self, api: Api) -> None:
        self.api = api

    def init_app(self, app: Flask | Blueprint, path: str) -> None:
        if self.api.openapi_path is None:
            raise ValueError("docs_path needs openapi_path: the page renders the OpenAPI document")
        app.add_url_rule(path, "restengine_api_docs", self.page, methods=["GET"])
        app.add_url_rule(f"{path}/assets/<path:filename>", "restengine_api_docs_asset", self.asset, methods=["GET"])

    def page(self) -> Response:
        """The HTML page: no inline script, every URL built by the app's URL map (a Blueprint's prefix,
        the script root behind a proxy)."""

        def asset(filename: str) -> str:
            return escape(url_for(self.api.endpoint("docs_asset"), filename=filename, v=ASSET_VERSION))

        html = PAGE.format(
            title=escape(f"{self.api.openapi.info.get('title') or DEFAULT_TITLE} documentation"),
            icon=asset("favicon-32x32.png"),
            index_css=asset("index.css"),
            css=asset("swagger-ui.css"),
            bundle=asset("swagger-ui-bundle.js"),
            init=asset(INIT_SCRIPT),
            spec=escape(url_for(self.api.endpoint("openapi"))),
        )
        response = Response(html, mimetype="text/html")
        response.headers.update(
            {"Content-Security-Policy": CSP, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
        )
        return response

    def asset(self, filename: str) -> Response:
        """A Swagger UI file (or our start-up script); cached for a year when asked for by its versioned URL."""
        response: Response
        if filename == INIT_SCRIPT:
            response = Response(INIT_JS, mimetype="text/javascript")
        else:
            response = send_from_directory(str(DIST), filename)
        versioned = request.args.get("v") == ASSET_VERSION
        response.headers["Cache-Control"] = LONG_CACHE if versioned else "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response
