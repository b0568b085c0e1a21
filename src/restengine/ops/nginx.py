"""Render the packaged ``nginx.conf.template`` into a complete nginx.conf.

The template is package data (``restengine/ops/nginx.conf.template``), read
with :mod:`importlib.resources`, so rendering works from an installed wheel.
It holds ``@NAME@`` placeholders (nginx's own ``$variables`` are left
alone). :func:`render` fills them in; :func:`write_config` also makes the run
directory nginx needs. ``python -m restengine.ops.nginx`` prints the rendering for
docker-compose, which is checked in as ``nginx/compose.conf``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TypedDict, Unpack

TEMPLATE: Traversable = files("restengine.ops") / "nginx.conf.template"

# Subdirectories of the run directory the template names as temp paths.
TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")

# Passive health: after 3 failed attempts within 10s an instance gets no
# traffic for 10s.
SERVER_PARAMS = "max_fails=3 fail_timeout=10s"


class Params(TypedDict):
    """What a rendering is made of (see :func:`render`)."""

    listen: str
    upstreams: Sequence[str]
    server_names: Sequence[str]
    run_dir: Path
    access_log: str
    error_log: str


# What nginx/compose.conf is rendered from; the names are docker-compose.yml's services.
COMPOSE_PARAMS: Params = {
    "listen": "8080",
    "upstreams": ("app1:8000", "app2:8000"),
    "server_names": ("localhost", "127.0.0.1", "nginx"),
    "run_dir": Path("/tmp/nginx"),
    "access_log": "/dev/stdout",
    "error_log": "/dev/stderr",
}

_PLACEHOLDER = re.compile(r"@([A-Z][A-Z0-9_]*)@")
# One nginx argument: no whitespace, quotes, braces or semicolons that could end
# a directive or open a block.
_TOKEN = re.compile(r"[^\s;{}\"'#]+")


def _token(name: str, value: str) -> str:
    if not _TOKEN.fullmatch(value):
        raise ValueError(f"{name}: not a single nginx argument: {value!r}")
    return value


def render(**params: Unpack[Params]) -> str:
    """Return the nginx.conf text for these settings.

    ``listen`` is what nginx's ``listen`` takes (``8080``, ``127.0.0.1:8080``);
    ``upstreams`` are the gunicorn instances as ``host:port``; ``run_dir`` must
    be absolute and holds the pid file and temp directories.

    Raises :class:`ValueError` when ``upstreams`` or ``server_names`` is empty,
    a value is not a single nginx argument, ``run_dir`` is relative, or the
    template has a placeholder this function does not fill.
    Raises :class:`OSError` when the template cannot be read.
    """
    listen, upstreams, server_names = params["listen"], params["upstreams"], params["server_names"]
    if isinstance(upstreams, str) or isinstance(server_names, str):
        raise ValueError("upstreams and server_names must be sequences of strings, not a string")
    if not upstreams:
        raise ValueError("upstreams: at least one upstream server is needed")
    if not server_names:
        raise ValueError("server_names: at least one server name is needed")
    run_dir = Path(params["run_dir"])
    if not run_dir.is_absolute():
        raise ValueError(f"run_dir: must be an absolute path, got {str(run_dir)!r}")

    servers = [f"server {_token('upstreams', u)} {SERVER_PARAMS};" for u in upstreams]
    values = {
        "LISTEN": _token("listen", listen),
        "UPSTREAM_SERVERS": "\n        ".join(servers),
        "SERVER_NAMES": " ".join(_token("server_names", n) for n in server_names),
        "RUN_DIR": _token("run_dir", str(run_dir)),
        "ACCESS_LOG": _token("access_log", params["access_log"]),
        "ERROR_LOG": _token("error_log", params["error_log"]),
    }

    template = TEMPLATE.read_text(encoding="utf-8")
    unknown = sorted(set(_PLACEHOLDER.findall(template)) - values.keys())
    if unknown:
        raise ValueError(f"{TEMPLATE}: unfilled placeholders: {', '.join('@' + n + '@' for n in unknown)}")
    text = _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
    leftover = _PLACEHOLDER.search(text)
    if leftover:
        raise ValueError(f"placeholder {leftover.group(0)} left in the rendered config (from a value)")
    return text


def write_config(path: Path, **params: Unpack[Params]) -> Path:
    """Render the config to ``path`` and create ``run_dir`` with its temp directories.

    Returns ``path``. Raises what :func:`render` raises, and :class:`OSError`
    when a directory or the file cannot be written.
    """
    text = render(**params)
    run_dir = Path(params["run_dir"])
    for name in TEMP_DIRS:
        (run_dir / name).mkdir(parents=True, exist_ok=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


if __name__ == "__main__":
    sys.stdout.write(render(**COMPOSE_PARAMS))
