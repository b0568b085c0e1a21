"""The settings of the ``restengine`` command and the local stack it runs.

:class:`StackSettings` is :class:`restengine.config.Settings` (what every
worker needs, which the stack passes on to the workers it starts) plus what
only the processes around the workers need: the data directory, the ports of
redis-server, nginx and the gunicorn instances, and the size of the demo seed.
They come from the same environment, parsed and validated by the same helpers,
so an invalid value stops the command with the same one-line reason.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from restengine.config import (
    ConfigError,
    Settings,
    build_settings,
    parse_int,
    parse_list,
    parse_port,
    parse_str,
    setting,
)


def parse_ports(name: str, raw: Any) -> tuple[int, ...]:
    ports = tuple(parse_port(name, item) for item in parse_list(name, raw))
    if not ports:
        raise ConfigError(f"{name}: needs at least one port")
    return ports


@dataclasses.dataclass(frozen=True)
class StackSettings(Settings):
    """Every setting the ``restengine`` command reads. Build it with :func:`load_stack_settings`."""

    data_dir: Path = setting(
        "RESTENGINE_DATA_DIR",
        lambda n, v: Path(parse_str(n, v)).expanduser(),
        Path("var"),
        "Where the embedded database keeps its data, and where `up` writes logs and run files.",
    )
    redis_port: int = setting("RESTENGINE_REDIS_PORT", parse_port, 6379, "Port of the redis-server that `up` starts.")
    http_port: int = setting("RESTENGINE_HTTP_PORT", parse_port, 8080, "Port nginx listens on (127.0.0.1) under `up`.")
    instance_ports: tuple[int, ...] = setting(
        "RESTENGINE_INSTANCE_PORTS",
        parse_ports,
        (8001, 8002),
        "Ports of the gunicorn instances `up` starts behind nginx; one instance a port.",
    )
    seed_books: int = setting("RESTENGINE_SEED_BOOKS", parse_int, 10_000, "Books the demo seed writes on first run.")


def load_stack_settings(
    overrides: Mapping[str, Any] | None = None, *, environ: Mapping[str, str] | None = None
) -> StackSettings:
    """Build validated :class:`StackSettings`: the environment, then ``overrides`` (same keys).

    Raises :class:`restengine.config.ConfigError` naming the setting when a value is invalid.
    """
    return build_settings(StackSettings, overrides, environ=environ)
