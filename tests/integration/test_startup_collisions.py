"""Served classes whose names collide stop ``restengine serve``, ``restengine indexes`` and gunicorn itself
before any worker starts, with one line naming both classes (``tests.collide_a``/``_b``/``_c``)."""

from __future__ import annotations

import os
import subprocess
import sys

from restengine.ops.processes import free_port
from tests.integration.api_helpers import run_cli

COLLIDING = "tests.collide_a,tests.collide_b"
REASON = (
    "invalid configuration: RESTENGINE_DOCUMENTS: two served classes have the class name 'Figure':"
    " tests.collide_a.Figure and tests.collide_b.Figure (MongoEngine keeps one class per name; rename one of them)"
)


def test_indexes_refuses_colliding_classes(mongodb_uri: str) -> None:
    result = run_cli("indexes", "--documents", COLLIDING, MONGODB_URI=mongodb_uri)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [f"Error: {REASON}"], result.stderr


def test_serve_refuses_colliding_classes_before_any_worker(mongodb_uri: str) -> None:
    bind = f"127.0.0.1:{free_port()}"
    result = run_cli("serve", "--bind", bind, "--documents", COLLIDING, MONGODB_URI=mongodb_uri)
    assert result.returncode != 0
    assert REASON in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "Booting worker" not in result.stderr, result.stderr


def gunicorn_output(**env: str) -> str:
    """Start gunicorn with RestEngine's configuration; it must refuse to: what it printed."""
    argv = [sys.executable, "-m", "gunicorn", "--config", "python:restengine.ops.gunicorn_conf"]
    result = subprocess.run(
        [*argv, "--bind", f"127.0.0.1:{free_port()}"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode != 0
    return result.stdout + result.stderr


def test_gunicorn_refuses_two_classes_under_one_resource_name(mongodb_uri: str) -> None:
    output = gunicorn_output(MONGODB_URI=mongodb_uri, RESTENGINE_DOCUMENTS="tests.collide_a,tests.collide_c")
    assert (
        "invalid configuration: RESTENGINE_DOCUMENTS: two served classes have the resource name"
        " 'collide_a_figures': tests.collide_a.Figure and tests.collide_c.Label"
    ) in output, output
    assert "Traceback" not in output and "Booting worker" not in output, output


def test_gunicorn_refuses_an_apps_colliding_classes_with_indexes_off(mongodb_uri: str) -> None:
    output = gunicorn_output(
        MONGODB_URI=mongodb_uri,
        RESTENGINE_APP="tests.collide_app:app",  # its Documents found by discovery, not RESTENGINE_DOCUMENTS
        RESTENGINE_INDEXES="off",
    )
    assert "RESTENGINE_APP: two served classes have the class name 'Figure'" in output, output
    assert "Booting worker" not in output, output
