"""Running RestEngine: the ``restengine`` command and the local stack's processes.

Nothing here runs inside a gunicorn worker; the app never imports this package.
"""
