"""A Document tree whose class names are also defined by ``tests.collide_a`` (a name collision).

Only the collision tests import it: nothing else uses the names ``Figure`` and ``Figure.Ring``.
"""

from __future__ import annotations

from mongoengine import Document, FloatField, StringField


class Figure(Document):
    name = StringField()
    meta = {"collection": "collide_b_figures", "allow_inheritance": True}


class Ring(Figure):
    radius = FloatField()
