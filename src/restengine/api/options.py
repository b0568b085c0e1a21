"""Per-resource options: what a client may see, change, filter and sort."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

# Operators per kind of field; "eq" is the bare ``?field=value``. Defined in ``operators``.
from restengine.api.operators import ALL_OPERATORS, COMPARISON, LIST, STRING

__all__ = ["ALL_OPERATORS", "COMPARISON", "LIST", "METHODS", "STRING", "Hook", "ResourceOptions"]

Hook = Callable[[Any], None]

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@dataclasses.dataclass(frozen=True)
class ResourceOptions:
    """How one Document class is served. Every option has a safe default.

    - ``name``: the URL segment; default the collection name, or the class name
      in snake_case for a subclass sharing its parent's collection.
    - ``fields``: attribute names exposed (default: all); ``hidden``: never
      exposed, filtered or sorted on; ``read_only``: shown, never written by clients.
    - ``filterable``: field path -> allowed operators, or a list of field
      paths (all operators that fit each field's type); ``None`` means every
      exposed field. A path also allows the paths below it (``shipping`` allows
      ``shipping__city``).
    - ``expensive``: the filters no index can serve (``contains``, ``icontains``, ``istartswith``,
      ``endswith``, ``iendswith``, ``iexact``) clients may use anyway: ``"title__icontains"`` (one
      operator), ``"title"`` (all of them on a field and below it) or ``"*"`` (every field). Off by default:
      one client's scans of a large collection would slow every other client's reads. An operator
      ``filterable`` names explicitly is allowed too.
    - ``sortable``: field paths clients may sort on; ``None`` means every exposed
      scalar field.
    - ``default_limit`` / ``max_limit``: page sizes.
    - ``methods``: HTTP methods allowed on the resource (GET is always allowed).
    - ``cache_ttl``: seconds GET responses stay fresh in the shared cache
      (``None``: ``RESTENGINE_CACHE_TTL``; ``0``: never cached);
      ``cache_control``: the ``Cache-Control`` sent with GET responses
      (default ``no-cache``: clients revalidate with the ETag and get 304s).
    - hooks: called with the Document: ``before_*`` after validation and before
      the write (raise to refuse it), ``after_*`` after the write succeeded.
    """

    name: str | None = None
    fields: Sequence[str] | None = None
    hidden: Sequence[str] = ()
    read_only: Sequence[str] = ()
    filterable: Mapping[str, Sequence[str]] | Sequence[str] | None = None
    expensive: Sequence[str] = ()
    sortable: Sequence[str] | None = None
    default_limit: int = 25
    max_limit: int = 100
    methods: Sequence[str] = METHODS
    cache_ttl: int | None = None
    cache_control: str = "no-cache"
    before_create: Hook | None = None
    after_create: Hook | None = None
    before_update: Hook | None = None
    after_update: Hook | None = None
    before_delete: Hook | None = None
    after_delete: Hook | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.default_limit <= self.max_limit:
            raise ValueError(f"default_limit must be between 1 and max_limit ({self.max_limit})")
        unknown = {m.upper() for m in self.methods} - set(METHODS)
        if unknown:
            raise ValueError(f"unknown methods: {sorted(unknown)}")
