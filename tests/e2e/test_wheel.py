"""The built wheel on its own: installed into a fresh virtualenv and run from an empty directory.

The Docker image deletes the sources once the package is installed, so nothing
RestEngine reads at run time may live outside the package. Here the project is
built into a wheel (from a copy of its build inputs, so the working tree gets no
``build/``), installed (not editable) into a new virtualenv with its dependencies,
and run from an empty directory: ``restengine serve`` answers ``/healthz`` with the
packaged gunicorn configuration, and the packaged nginx template renders.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from restengine.ops.processes import free_port, port_open
from tests.e2e.helpers import ROOT, get, wait_for
from tests.keys import TEST_SECRET

BUILD_INPUTS = ("pyproject.toml", "setup.cfg", "README.md", "src")
PIP_SECONDS = 540  # bounds every pip run; dependencies may come from PyPI
# Building and installing can take minutes on a cold pip cache; pytest's default timeout is 300 s.
pytestmark = pytest.mark.timeout(900)


@dataclass(frozen=True)
class Venv:
    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def restengine(self) -> Path:
        return self.root / "bin" / "restengine"


def _run(
    argv: list[str | Path], what: str, *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=PIP_SECONDS,
    )
    assert result.returncode == 0, f"{what} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


def _clean_env(venv: Venv) -> dict[str, str]:
    """The environment with nothing pointing at the source checkout or its virtualenv."""
    drop = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "MONGODB_URI", "REDIS_URL"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("RESTENGINE_")}
    env["PATH"] = f"{venv.root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv.root)
    return env


@pytest.fixture(scope="session")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A fresh virtualenv with the project's wheel installed (built once per test session)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, source / name)
    dist = work / "dist"
    # Build isolation: pip brings the build backend pyproject.toml asks for (setuptools, wheel).
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, source], "building the wheel")
    wheels = sorted(dist.glob("restengine-*.whl"))
    assert len(wheels) == 1, wheels

    venv = Venv(work / "venv")
    _run([sys.executable, "-m", "venv", venv.root], "creating the virtualenv")
    _run([venv.python, "-m", "pip", "install", "-q", wheels[0]], "installing the wheel", env=_clean_env(venv))
    return venv


@pytest.fixture
def empty_dir(tmp_path: Path) -> Path:
    empty = tmp_path / "empty"
    empty.mkdir()
    return empty


def test_the_installed_package_is_the_wheel_not_the_checkout(wheel_venv: Venv, empty_dir: Path) -> None:
    code = (
        "import json, restengine, restengine.ops.nginx as n, restengine.ops.gunicorn_conf as g\n"
        "print(json.dumps([restengine.__file__, str(n.TEMPLATE), g.__file__]))\n"
    )
    result = _run([wheel_venv.python, "-c", code], "importing restengine", cwd=empty_dir, env=_clean_env(wheel_venv))
    for path in map(Path, json.loads(result.stdout)):
        assert path.is_file()
        assert path.resolve().is_relative_to(wheel_venv.root.resolve()), f"{path} is not in the fresh virtualenv"
        assert not path.resolve().is_relative_to(ROOT), f"{path} is the source checkout"


def test_restengine_serve_answers_healthz(wheel_venv: Venv, empty_dir: Path, tmp_path: Path, mongodb_uri: str) -> None:
    port = free_port()
    env = _clean_env(wheel_venv)
    env.update(MONGODB_URI=mongodb_uri, RESTENGINE_SECRET_KEY=TEST_SECRET, RESTENGINE_WORKERS="1")
    log = tmp_path / "serve.log"  # outside the empty directory
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(wheel_venv.restengine), "serve", "--bind", f"127.0.0.1:{port}"],
            cwd=empty_dir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # serve, gunicorn and its workers: one group to kill if need be
        )
    try:
        wait_for(lambda: proc.poll() is not None or get(port, "/healthz", timeout=1)[0] == 200, 60, "/healthz")
        assert proc.poll() is None, log.read_text(errors="replace")
        status, headers, body = get(port, "/healthz")
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        assert headers["content-type"].startswith("application/json")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(40)  # gunicorn's graceful_timeout is 30 s
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text
    assert "Using worker: restengine.ops.worker.ThreadWorker" in text, text
    assert not port_open("127.0.0.1", port), "serve stopped with its gunicorn"
    assert list(empty_dir.iterdir()) == [], "nothing is read from or written to the working directory"


def test_the_nginx_config_renders_from_the_package(wheel_venv: Venv, empty_dir: Path) -> None:
    result = _run(
        [wheel_venv.python, "-m", "restengine.ops.nginx"], "rendering nginx", cwd=empty_dir, env=_clean_env(wheel_venv)
    )
    text = result.stdout
    assert "upstream restengine {" in text
    assert "server app1:8000 max_fails=3 fail_timeout=10s;" in text
    assert not re.search(r"@[A-Z][A-Z0-9_]*@", text), "a placeholder was left unfilled"
    assert text == (ROOT / "nginx" / "compose.conf").read_text(), "the wheel renders what is checked in"
