"""RestEngine: serve MongoEngine documents as a fast, safe REST API.

The public names are imported on first use, so importing a submodule such as
``restengine.config`` (gunicorn's configuration does, before gevent patches
the standard library) loads neither Flask nor PyMongo.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from restengine.api import Api, ResourceOptions
    from restengine.app import create_app
    from restengine.config import ConfigError, Settings, load_settings

__all__ = ["Api", "ConfigError", "ResourceOptions", "Settings", "create_app", "load_settings"]
__version__ = "0.1.0"

_HOMES = {
    "Api": "restengine.api",
    "ResourceOptions": "restengine.api",
    "create_app": "restengine.app",
    "ConfigError": "restengine.config",
    "Settings": "restengine.config",
    "load_settings": "restengine.config",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'restengine' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
