"""A Document whose writes can be made slow at a chosen moment, to stop an instance mid-request.

``slow-before…`` names sleep in ``clean()`` (before anything is sent); ``slow-after…`` names sleep in a
``post_save`` receiver (after the insert reached the database, before the response). The sleep is
``TICKET_SLEEP_SECONDS`` (3 s by default).
"""

from __future__ import annotations

import os
import time
from typing import Any

from mongoengine import Document, IntField, StringField, signals


def _sleep() -> None:
    time.sleep(float(os.environ.get("TICKET_SLEEP_SECONDS", "3")))


class Ticket(Document):
    meta = {"collection": "tickets"}
    name = StringField(required=True)
    seats = IntField(default=1)

    def clean(self) -> None:
        if (self.name or "").startswith("slow-before"):
            _sleep()


def _after_save(sender: Any, document: Any, **kwargs: Any) -> None:
    if (document.name or "").startswith("slow-after"):
        _sleep()


signals.post_save.connect(_after_save, sender=Ticket)
