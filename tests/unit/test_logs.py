"""The command line's logs (``restengine.logs.configure``): JSON objects with ``RESTENGINE_LOG_FORMAT=json``."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from restengine.logs import configure


@pytest.fixture(autouse=True)
def _root_logger_restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_the_record_and_its_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure("json", "INFO")
    logging.getLogger("restengine.test").warning("seeded %d books", 3, extra={"books": 3})
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["level"] == "WARNING" and record["logger"] == "restengine.test"
    assert record["message"] == "seeded 3 books" and record["books"] == 3 and record["time"]


def test_text_stays_the_default_for_people(capsys: pytest.CaptureFixture[str]) -> None:
    configure("text", "INFO")
    logging.getLogger("restengine.test").warning("plain")
    assert capsys.readouterr().err.strip().endswith("WARNING restengine.test: plain")
