"""The packaged nginx.conf.template renders: every placeholder filled, values checked, compose.conf current.

Nothing here runs nginx: tests/integration/test_nginx_proxy.py runs the real
binary from a rendered config and checks how it proxies.
"""

from __future__ import annotations

import configparser
import os
import re
import runpy
from importlib.resources import files
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from restengine.ops import nginx as nginx_conf


def test_render_fills_every_placeholder_and_keeps_nginx_variables(tmp_path: Path) -> None:
    text = nginx_conf.render(
        listen="127.0.0.1:9000",
        upstreams=["127.0.0.1:9001", "127.0.0.1:9002"],
        server_names=["localhost"],
        run_dir=tmp_path,
        access_log="/dev/stdout",
        error_log="/dev/stderr",
    )
    assert not re.search(r"@[A-Z_]+@", text)
    assert "server 127.0.0.1:9001 max_fails=3 fail_timeout=10s;" in text
    assert "server 127.0.0.1:9002 max_fails=3 fail_timeout=10s;" in text
    assert f"pid {tmp_path}/nginx.pid;" in text
    assert "$proxy_add_x_forwarded_for" in text
    assert "daemon" not in re.sub(r"#.*", "", text)


def test_render_refuses_an_empty_upstream_list(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="upstream"):
        nginx_conf.render(
            listen="8080",
            upstreams=[],
            server_names=["localhost"],
            run_dir=tmp_path,
            access_log="/dev/stdout",
            error_log="/dev/stderr",
        )


@pytest.mark.parametrize("bad", ["127.0.0.1:1; return 200", "a b", "x{"])
def test_render_refuses_values_that_would_inject_directives(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError):
        nginx_conf.render(
            listen="8080",
            upstreams=[bad],
            server_names=["localhost"],
            run_dir=tmp_path,
            access_log="/dev/stdout",
            error_log="/dev/stderr",
        )


def test_render_refuses_a_placeholder_it_does_not_know(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    template = tmp_path / "nginx.conf.template"
    template.write_text(nginx_conf.TEMPLATE.read_text() + "\n# @MYSTERY@\n")
    monkeypatch.setattr(nginx_conf, "TEMPLATE", template)
    with pytest.raises(ValueError, match="@MYSTERY@"):
        nginx_conf.render(**nginx_conf.COMPOSE_PARAMS)


def test_the_template_is_package_data_declared_for_the_wheel(repo_root: Path) -> None:
    packaged = files("restengine.ops") / "nginx.conf.template"
    assert str(nginx_conf.TEMPLATE) == str(packaged)
    assert nginx_conf.TEMPLATE.is_file()
    setup = configparser.ConfigParser()
    setup.read(repo_root / "setup.cfg")
    assert "nginx.conf.template" in setup["options.package_data"]["restengine.ops"].split()
    assert not (repo_root / "nginx" / "nginx.conf.template").exists(), "one template: the packaged one"


def test_checked_in_compose_conf_matches_the_template(repo_root: Path) -> None:
    checked_in = (repo_root / "nginx" / "compose.conf").read_text()
    assert checked_in == nginx_conf.render(**nginx_conf.COMPOSE_PARAMS), (
        "nginx/compose.conf is stale: run `python -m restengine.ops.nginx > nginx/compose.conf`"
    )


def _seconds(value: str) -> float:
    """An nginx time value (``60``, ``60s``, ``1m``, ``500ms``) in seconds."""
    match = re.fullmatch(r"(\d+)(ms|s|m|h)?", value)
    assert match, f"not an nginx time: {value!r}"
    factor = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[match.group(2)]
    return int(match.group(1)) * factor


def _gunicorn_settings() -> dict[str, Any]:
    # The packaged configuration, executed afresh (never cached in sys.modules). It writes
    # RESTENGINE_THREADS into os.environ: keep that out of other tests.
    with mock.patch.dict(os.environ):
        os.environ.pop("RESTENGINE_WORKER_CLASS", None)
        return runpy.run_module("restengine.ops.gunicorn_conf")


def test_gunicorn_keepalive_outlasts_nginx_upstream_keepalive() -> None:
    template = nginx_conf.TEMPLATE.read_text()
    block = re.search(r"upstream\s+restengine\s*\{(.*?)\n\s*\}", template, re.DOTALL)
    assert block, "no upstream restengine block in the template"
    timeout = re.search(r"^\s*keepalive_timeout\s+(\S+);", block.group(1), re.MULTILINE)
    assert timeout, "the upstream block sets no keepalive_timeout (nginx's default is 60s)"
    gunicorn = _gunicorn_settings()
    assert gunicorn["worker_class"] == "restengine.ops.worker.ThreadWorker"
    assert gunicorn["keepalive"] > _seconds(timeout.group(1))
