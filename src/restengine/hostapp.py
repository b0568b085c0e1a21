"""A team's own Flask app (``RESTENGINE_APP``), found the way ``flask --app`` finds it."""

from __future__ import annotations

from flask import Flask
from flask.cli import NoAppException, locate_app

from restengine.config import ConfigError

SETTING = "RESTENGINE_APP"


def locate(spec: str) -> Flask:
    """The app ``spec`` names: ``module``, ``module:app``, ``module:create_app`` or ``module:create_app(...)``
    with literal arguments (a factory is called). Raises :class:`ConfigError` naming the setting when the
    module cannot be imported or names no Flask app; an error raised inside the module or the factory
    is chained."""
    module, _, name = spec.partition(":")
    if not module:
        raise ConfigError(f"{SETTING}: expected module:app or module:create_app(), got {spec!r}")
    try:
        app = locate_app(module, name or None)
    except NoAppException as exc:
        raise ConfigError(f"{SETTING}: {str(exc).splitlines()[0]}") from exc
    except Exception as exc:  # anything the module or its factory raised
        reason = str(exc).splitlines()[0] if str(exc) else ""
        raise ConfigError(f"{SETTING}: building {spec!r} failed: {type(exc).__name__}: {reason}") from exc
    if not isinstance(app, Flask):
        raise ConfigError(f"{SETTING}: {spec!r} is not a Flask app")
    return app
