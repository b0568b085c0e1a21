"""The filter operators of the query string (``?price__gte=5``), each defined once.

Every other module derives what it needs from :data:`OPERATORS`: the operator
sets per kind of field (``options``, the field-type table), the suffixes and
the MongoDB conditions (``filters``), the order and descriptions of the filter
parameters in the OpenAPI document. Importing this module imports nothing else.
"""

from __future__ import annotations

import dataclasses

MAX_VALUE_LENGTH = 200  # characters in one filter value
MAX_LIST_ITEMS = 100  # comma-separated values of ``in``/``nin``/``all``


@dataclasses.dataclass(frozen=True)
class Operator:
    """One ``field__<name>=value`` operator (``eq`` is the bare ``field=value``).

    ``scalar``: fits a field holding one value; ``listed``: fits a list field
    (matching its elements); ``text``: a string match, built as ``$regex`` with
    ``anchors`` around the escaped text, ``$options: "i"`` when ``ignore_case``;
    ``takes_list``: the value is comma-separated; ``mongo``: the MongoDB operator
    it builds (``None``: the bare value, or a ``$regex``).
    """

    name: str
    description: str
    mongo: str | None = None
    scalar: bool = False
    listed: bool = False
    text: bool = False
    takes_list: bool = False
    anchors: tuple[str, str] = ("", "")
    ignore_case: bool = False


def _text(name: str, anchors: tuple[str, str], description: str) -> Operator:
    return Operator(name, description, text=True, anchors=anchors, ignore_case=name.startswith("i"))


# In the order the OpenAPI document lists a field's filter parameters.
OPERATORS: tuple[Operator, ...] = (
    Operator("eq", "Equal to (an element of, for a list).", scalar=True, listed=True),
    Operator("ne", "Not equal to.", "$ne", scalar=True, listed=True),
    Operator("lt", "Less than.", "$lt", scalar=True),
    Operator("lte", "Less than or equal to.", "$lte", scalar=True),
    Operator("gt", "Greater than.", "$gt", scalar=True),
    Operator("gte", "Greater than or equal to.", "$gte", scalar=True),
    Operator("in", "Any of these (comma-separated).", "$in", scalar=True, listed=True, takes_list=True),
    Operator("nin", "None of these (comma-separated).", "$nin", scalar=True, listed=True, takes_list=True),
    Operator("exists", "Present (true) or missing (false).", "$exists", scalar=True, listed=True),
    Operator("size", "Has this many elements.", "$size", listed=True),
    Operator("all", "Contains all of these (comma-separated).", "$all", listed=True, takes_list=True),
    _text("contains", ("", ""), "Contains this text (literally, case-sensitive)."),
    _text("icontains", ("", ""), "Contains this text (literally, any case)."),
    _text("startswith", ("^", ""), "Starts with this text (case-sensitive)."),
    _text("istartswith", ("^", ""), "Starts with this text (any case)."),
    _text("endswith", ("", "$"), "Ends with this text (case-sensitive)."),
    _text("iendswith", ("", "$"), "Ends with this text (any case)."),
    _text("iexact", ("^", "$"), "Equal to this text in any case."),
)
BY_NAME = {op.name: op for op in OPERATORS}
ORDER = [op.name for op in OPERATORS]

# Operators per kind of field.
COMPARISON = frozenset(op.name for op in OPERATORS if op.scalar)
TEXT_OPERATORS = frozenset(op.name for op in OPERATORS if op.text)  # contains, icontains, ..., iexact
STRING = COMPARISON | TEXT_OPERATORS
LIST = frozenset(op.name for op in OPERATORS if op.listed)
ALL_OPERATORS = STRING | LIST
OPERATOR_SUFFIXES = ALL_OPERATORS - {"eq"}
LIST_VALUED = frozenset(op.name for op in OPERATORS if op.takes_list)  # in, nin, all
# Text operators no index can serve: unanchored or case-insensitive patterns read every value of the field.
# Off unless a resource's options allow them (``ResourceOptions.expensive``); ``startswith`` (a case-sensitive
# prefix) walks an index on the field and stays on.
EXPENSIVE = TEXT_OPERATORS - {"startswith"}
PRESENCE = frozenset({"exists"})  # all a field without a filterable value offers
LIST_PRESENCE = frozenset({"exists", "size"})  # all a list of such values offers
