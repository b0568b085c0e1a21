"""The reserved query parameters as the views read them: list-valued ones in either form, single ones once.

A list-valued parameter (``fields``, ``expand``, ``sort``) may be sent
comma-separated (``?fields=title,price``), repeated (``?fields=title&fields=price``,
what OpenAPI's ``style: form, explode: true`` and most generated clients send),
or both: it means the concatenation of every value, in order. A single-valued
parameter (``limit``, ``cursor``, ``count``) given more than once is a 400:
no value is ever dropped without a word.
"""

from __future__ import annotations

from werkzeug.datastructures import MultiDict

from restengine.errors import InvalidParameter

LIST_VALUED = frozenset({"fields", "expand", "sort"})
SINGLE_VALUED = frozenset({"limit", "cursor", "count"})


def list_value(args: MultiDict[str, str], name: str) -> str | None:
    """Every value of ``name`` joined with commas, in order; ``None`` when absent."""
    values = args.getlist(name)
    return ",".join(values) if values else None


def single_value(args: MultiDict[str, str], name: str) -> str | None:
    """The one value of ``name``; ``None`` when absent. Raises :class:`InvalidParameter` when repeated."""
    values = args.getlist(name)
    if len(values) > 1:
        raise InvalidParameter(name, "given more than once: it takes one value")
    return values[0] if values else None
