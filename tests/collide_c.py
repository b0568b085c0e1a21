"""A class served under the same resource name (its collection's) as ``tests.collide_a.Figure``."""

from __future__ import annotations

from mongoengine import Document, StringField


class Label(Document):
    text = StringField()
    meta = {"collection": "collide_a_figures"}
