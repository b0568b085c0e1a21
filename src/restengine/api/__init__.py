"""The REST resource layer: ``Api`` serves Document classes; ``ResourceOptions`` shapes each one."""

from restengine.api.options import ResourceOptions
from restengine.api.registry import Api

__all__ = ["Api", "ResourceOptions"]
