"""Running RestEngine: the ``restengine`` command, the local stack's processes and their settings.

The app never imports this package. ``gunicorn_conf`` is the gunicorn
configuration gunicorn loads (its hooks call into ``restengine.db``), and
``nginx.conf.template`` is package data: both ship in the wheel. This module
imports nothing, so loading ``restengine.ops.gunicorn_conf`` imports nothing
heavy before gevent can patch the standard library.
"""
