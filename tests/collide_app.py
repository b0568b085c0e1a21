"""A host app whose modules define two Document classes of one name (see ``tests.collide_a``/``_b``)."""

from __future__ import annotations

from flask import Flask

import tests.collide_a
import tests.collide_b

MODULES = (tests.collide_a, tests.collide_b)

app = Flask(__name__)
