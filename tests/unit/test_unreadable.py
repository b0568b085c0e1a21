"""Stored values the codec cannot render read as null, listed in ``_unreadable`` (issue 12)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import pytest
from bson import Code, Int64, ObjectId
from bson.datetime_ms import DatetimeMS

from restengine.api.codec import decode_document, stored_document
from restengine.api.fields import Unreadable, jsonable
from tests.stored_data_models import Legacy


def test_jsonable_refuses_what_json_cannot_hold() -> None:
    assert jsonable({"a": [Int64(5), Code("x"), True, 1.5]}) == {"a": [5, "x", True, 1.5]}
    for value in (float("nan"), DatetimeMS(2**62), [[[1]]]):
        with pytest.raises(Unreadable):
            jsonable(value, depth=98)


def test_an_out_of_range_date_reads_as_null() -> None:
    pk = ObjectId()
    item = decode_document(Legacy, {"_id": pk, "title": "t", "when": DatetimeMS(2**62)}, None, False)
    assert item["when"] is None and item["_unreadable"] == ["when"]
    orjson.dumps(item)


def test_a_document_decodes_on_the_fast_path_when_all_is_readable() -> None:
    raw: dict[str, Any] = {"_id": ObjectId(), "title": "t", "when": dt.datetime(2024, 1, 2), "part": {"name": "p"}}
    item = decode_document(Legacy, raw, None, False)
    assert "_unreadable" not in item and item["when"] == "2024-01-02T00:00:00Z" and item["part"]["name"] == "p"


def test_a_document_to_write_leaves_unreadable_values_out() -> None:
    raw = {"_id": ObjectId(), "title": "t", "count": "x", "extra": 1, "part": {"_cls": "Nope"}}
    item = decode_document(Legacy, raw, None, False)
    assert item["_unreadable"] == ["count", "part._cls"]
    doc = stored_document(Legacy, raw, frozenset({"count", "part"}))
    assert doc.title == "t" and doc.count is None and doc.part is None
    doc = stored_document(Legacy, raw, frozenset())  # the representation did not show them: every field checked
    assert doc.count is None and doc.part is None and doc.title == "t"
