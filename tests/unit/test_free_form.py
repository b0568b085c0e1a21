"""Free-form values, date-times out of range and body ids: the field types and their write schemas agree (issue 12)."""

from __future__ import annotations

from typing import Any

import pytest

from restengine.api.codec import parse_datetime, pk_value
from restengine.api.fields.base import MAX_DEPTH, free_form
from tests.free_form_models import FreeCounter, FreeTag


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_date_time_out_of_range_in_utc_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_datetime(text)


def test_the_extreme_date_times_in_utc_parse() -> None:
    assert parse_datetime("0001-01-01T00:00:00-01:00").year == 1
    assert parse_datetime("9999-12-31T23:59:59+01:00").year == 9999


def test_free_form_depth_limit() -> None:
    assert free_form(nested(MAX_DEPTH)) == nested(MAX_DEPTH)
    with pytest.raises(ValueError, match="nested too deeply"):
        free_form(nested(MAX_DEPTH + 1))
    assert 0 < MAX_DEPTH <= 50, "well under MongoDB's 100 levels, whatever the document's own nesting"


@pytest.mark.parametrize("value", [{"$where": "1"}, [{"a": {"b.c": 1}}], {"x": [{"$gt": 1}]}, {"a\u0000": 1}])
def test_free_form_refuses_operator_dotted_and_nul_keys(value: Any) -> None:
    with pytest.raises(ValueError, match="must not start with"):
        free_form(value)


def test_free_form_keeps_ordinary_keys() -> None:
    value = {"": 1, "a$": [{"_cls": "x", "ok-key": None}]}
    assert free_form(value) == value


@pytest.mark.parametrize(
    ("doc_cls", "value", "expected"),
    [(FreeCounter, 7, 7), (FreeCounter, "7", 7), (FreeTag, "7", "7")],
)
def test_body_ids(doc_cls: type[Any], value: Any, expected: Any) -> None:
    assert pk_value(doc_cls, value) == expected


@pytest.mark.parametrize(
    ("doc_cls", "value"),
    [
        (FreeCounter, True),
        (FreeCounter, 1.0),
        (FreeCounter, [7]),
        (FreeTag, 7),
        (FreeTag, {"a": 1}),
        (FreeTag, None),
        (FreeTag, False),
    ],
)
def test_body_ids_of_the_wrong_json_type_are_refused(doc_cls: type[Any], value: Any) -> None:
    with pytest.raises(ValueError, match="must be a string"):
        pk_value(doc_cls, value)
