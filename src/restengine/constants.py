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
