"""gunicorn settings for RestEngine, for ``gunicorn -c gunicorn.conf.py`` run from the repository.

The configuration itself is shipped in the package, ``restengine/ops/gunicorn_conf.py``
(``gunicorn --config python:restengine.ops.gunicorn_conf`` works wherever RestEngine is
installed); this file only loads it. See that module and the README's configuration tables.
"""

from restengine.ops.gunicorn_conf import *  # noqa: F403
