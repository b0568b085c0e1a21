"""RestEngine: serve MongoEngine documents as a fast, safe REST API."""

from restengine.api import Api, ResourceOptions
from restengine.app import create_app
from restengine.config import ConfigError, Settings, load_settings

__all__ = ["Api", "ConfigError", "ResourceOptions", "Settings", "create_app", "load_settings"]
__version__ = "0.1.0"
