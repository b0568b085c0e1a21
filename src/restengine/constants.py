"""Names shared by several modules: media types, headers, methods, reserved query parameters.

Plain values only; importing this module imports nothing else.
"""

from __future__ import annotations

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
PROBLEM_JSON = "application/problem+json"

REQUEST_ID_HEADER = "X-Request-ID"

# Every method the API's URL rules accept; each view answers 405 (with Allow) for the ones it does not serve.
ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

# Query parameters of a list that are never filters.
RESERVED_PARAMETERS = frozenset({"fields", "sort", "limit", "cursor", "expand", "count"})

DRAIN_LIMIT = 16 * 1024 * 1024
"""The most of a refused request body read (and discarded) to keep its connection usable; gunicorn closes the
connection of a request announcing a larger one (``restengine.ops.gunicorn_conf.pre_request``)."""

CACHE_ANSWER = "restengine.cache.answer"  # WSGI environ key: what the cache did for a GET (its X-Cache), for metrics
