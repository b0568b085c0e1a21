"""The API's URL shapes, read from a WSGI path without Flask's routing, and the action each request takes.

Both WSGI layers in front of Flask (the access check and the cache) need to
know which resource a request is for before any view runs; they read it here,
the same way the URL rules in :class:`restengine.api.registry.Api` define it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import MutableMapping
from typing import Any

BULK = "_bulk"
ACTIONS_BY_METHOD = {"GET": "read", "HEAD": "read", "POST": "create", "PUT": "update", "PATCH": "update"}
BULK_ACTIONS = {"insert": "create", "update": "update", "replace": "update", "delete": "delete"}  # per _bulk ``op``


@dataclasses.dataclass(frozen=True)
class Route:
    """``/<prefix>/<resource>`` (a collection), ``…/<item>`` (an item) or ``…/_bulk``."""

    resource: str
    item: str | None = None
    bulk: bool = False


def parse_route(path: str, prefix: str) -> Route | None:
    """The resource route ``path`` names below ``prefix`` (``/api``); ``None`` for anything else (the index too).

    An item id is the rest of the path, ``/`` included (a string primary key may hold one).
    """
    if not path.startswith(prefix + "/"):
        return None
    parts = path[len(prefix) + 1 :].split("/", 1)
    if not all(parts) or (len(parts) == 2 and parts[1].startswith("/")):
        return None
    if len(parts) == 1:
        return Route(parts[0])
    return Route(parts[0], bulk=True) if parts[1] == BULK else Route(parts[0], item=parts[1])


def action(route: Route, method: str) -> str | None:
    """What ``method`` on ``route`` does to the resource: ``read``, ``create``, ``update`` or ``delete``.

    ``None`` when no single action applies: ``OPTIONS``, ``_bulk`` (each
    operation is checked on its own) and methods the URL does not serve (the
    view answers 405).
    """
    if route.bulk or method == "OPTIONS":
        return None
    if route.item is None:
        return ACTIONS_BY_METHOD.get(method) if method in ("GET", "HEAD", "POST") else None
    if method == "DELETE":
        return "delete"
    return ACTIONS_BY_METHOD.get(method) if method != "POST" else None


PARSED = "restengine.route.parsed"  # WSGI environ key: (prefix, the Route or None) of the request's path


def route_in(environ: MutableMapping[str, Any], prefix: str) -> Route | None:
    """:func:`parse_route` of the request's path, worked out once per request (every layer asks)."""
    known = environ.get(PARSED)
    if known is not None and known[0] == prefix:
        found: Route | None = known[1]
        return found
    found = parse_route(environ.get("PATH_INFO", ""), prefix)
    environ[PARSED] = (prefix, found)
    return found
