"""The codec's conversions that need no database."""

from __future__ import annotations

import datetime as dt

import pytest
from mongoengine import Document, ObjectIdField, StringField

from restengine.api.codec import format_datetime, input_value, pk_value


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (dt.datetime(50, 11, 1, 14, 36, 59), "0050-11-01T14:36:59Z"),
        (dt.datetime(1, 1, 1), "0001-01-01T00:00:00Z"),
        (dt.datetime(2024, 1, 2, 3, 4, 5, 678901), "2024-01-02T03:04:05.678Z"),
        (dt.datetime(2024, 1, 2, 5, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))), "2024-01-02T03:04:05Z"),
    ],
)
def test_datetimes_are_rfc3339_with_four_digit_years(value: dt.datetime, text: str) -> None:
    assert format_datetime(value) == text


class Keyed(Document):
    other = ObjectIdField()
    name = StringField()
    meta = {"collection": "codec_keyed"}


@pytest.mark.parametrize("text", ["", "None", "abc", "0" * 23])
def test_a_malformed_object_id_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        pk_value(Keyed, text)
    with pytest.raises(ValueError):
        input_value(Keyed._fields["other"], text)
