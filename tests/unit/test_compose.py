"""docker-compose.yml, the Dockerfile and nginx/compose.conf agree with each other.

Nothing here needs Docker: the files are parsed and cross-checked, so a
renamed service, port or replica set shows up as a failing test.
"""

from __future__ import annotations

import json
import os
import re
import runpy
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from restengine.ops.nginx import COMPOSE_PARAMS
from restengine.ops.stack import PACKAGED_GUNICORN_CONFIG as PACKAGED_CONFIG

APPS = ("app1", "app2")
LONG_RUNNING = ("mongo", "redis", *APPS, "nginx")


@pytest.fixture
def compose(repo_root: Path) -> dict[str, Any]:
    data = yaml.safe_load((repo_root / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def _gunicorn_settings() -> dict[str, Any]:
    # The packaged configuration the image runs, executed afresh (never cached in sys.modules).
    # It writes RESTENGINE_THREADS into os.environ: keep that out of other tests.
    with mock.patch.dict(os.environ):
        os.environ.pop("RESTENGINE_WORKER_CLASS", None)
        return runpy.run_module(PACKAGED_CONFIG.removeprefix("python:"))


def _duration(value: str) -> float:
    """A compose duration (``40s``, ``1m30s``, ``500ms``) in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", value)
    assert parts and "".join(n + u for n, u in parts) == value, f"not a compose duration: {value!r}"
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001}
    return sum(float(n) * scale[u] for n, u in parts)


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[-1])


def _depends(service: dict[str, Any]) -> dict[str, str]:
    return {name: spec["condition"] for name, spec in service.get("depends_on", {}).items()}


def test_compose_spec_without_version_key(compose: dict[str, Any]) -> None:
    assert "version" not in compose
    assert "x-app" in compose  # the shared app definition


def test_every_service_exists_and_long_running_ones_have_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) >= {"mongo", "redis", "migrate", *APPS, "nginx"}
    for name in LONG_RUNNING:
        test = services[name].get("healthcheck", {}).get("test")
        assert test and test[0] in {"CMD", "CMD-SHELL"}, f"{name} has no healthcheck"
        assert services[name].get("restart") == "unless-stopped", name
    assert services["migrate"]["restart"] == "no"
    assert "healthcheck" not in services["migrate"]


def test_start_order(services: dict[str, dict[str, Any]]) -> None:
    for app in APPS:
        assert _depends(services[app]) == {
            "mongo": "service_healthy",
            "redis": "service_healthy",
            "migrate": "service_completed_successfully",
        }
    assert _depends(services["migrate"]) == {"mongo": "service_healthy"}
    assert _depends(services["nginx"]) == {app: "service_healthy" for app in APPS}


def test_mongo_replica_set_matches_every_uri(services: dict[str, dict[str, Any]]) -> None:
    mongo = services["mongo"]
    command = mongo["command"]
    replset = command[command.index("--replSet") + 1]
    healthcheck = " ".join(mongo["healthcheck"]["test"])
    assert "rs.initiate" in healthcheck and "isWritablePrimary" in healthcheck
    assert f'_id: "{replset}"' in healthcheck and 'host: "mongo:27017"' in healthcheck
    assert any(v.endswith(":/data/db") for v in mongo["volumes"])
    for name in (*APPS, "migrate"):
        uri = urlsplit(services[name]["environment"]["MONGODB_URI"])
        assert uri.scheme == "mongodb"
        assert uri.hostname == "mongo" and uri.port in (None, 27017), name
        assert parse_qs(uri.query)["replicaSet"] == [replset], name


def test_apps_use_the_redis_service_as_a_bounded_cache(services: dict[str, dict[str, Any]]) -> None:
    redis_command = services["redis"]["command"]
    assert "--maxmemory" in redis_command
    policy = redis_command[redis_command.index("--maxmemory-policy") + 1]
    assert policy.endswith("-lru")
    for app in APPS:
        url = urlsplit(services[app]["environment"]["REDIS_URL"])
        assert url.scheme == "redis" and url.hostname == "redis", app


def test_apps_trust_exactly_one_proxy_and_publish_no_ports(services: dict[str, dict[str, Any]]) -> None:
    for app in APPS:
        assert services[app]["environment"]["RESTENGINE_PROXY_COUNT"] == "1", app
        assert "ports" not in services[app], f"{app} must be reached through nginx only"


def test_nginx_upstreams_are_the_app_services(services: dict[str, dict[str, Any]]) -> None:
    upstream_hosts = set()
    for upstream in COMPOSE_PARAMS["upstreams"]:
        host, port = upstream.rsplit(":", 1)
        assert host in APPS, f"upstream {upstream} is not an app service"
        assert _port(services[host]["environment"]["RESTENGINE_BIND"]) == int(port), upstream
        upstream_hosts.add(host)
    assert upstream_hosts == set(APPS), "an app service gets no traffic from nginx"


def test_app_healthcheck_probes_readiness_on_the_bound_port(services: dict[str, dict[str, Any]]) -> None:
    for app in APPS:
        probe = " ".join(services[app]["healthcheck"]["test"])
        port = _port(services[app]["environment"]["RESTENGINE_BIND"])
        assert f"http://127.0.0.1:{port}/readyz" in probe, app


def test_nginx_publishes_its_listen_port_and_mounts_compose_conf(
    services: dict[str, dict[str, Any]], repo_root: Path
) -> None:
    nginx = services["nginx"]
    assert nginx["command"] == ["nginx", "-g", "daemon off;"]
    published = [str(p) for p in nginx["ports"]]
    assert [int(p.rsplit(":", 1)[-1]) for p in published] == [_port(COMPOSE_PARAMS["listen"])]
    assert published == [f"127.0.0.1:8080:{_port(COMPOSE_PARAMS['listen'])}"], "the host's loopback only, by default"

    mounts = [str(v).split(":") for v in nginx["volumes"]]
    conf = [m for m in mounts if m[1] == "/etc/nginx/nginx.conf"]
    assert len(conf) == 1 and conf[0][2:] == ["ro"], mounts
    assert (repo_root / conf[0][0]).resolve() == (repo_root / "nginx" / "compose.conf").resolve()
    assert (repo_root / conf[0][0]).is_file()
    # compose.conf's pid file and temp dirs live here; it must exist and be writable.
    assert str(COMPOSE_PARAMS["run_dir"]) in nginx["tmpfs"]

    probe = " ".join(nginx["healthcheck"]["test"])
    assert f":{_port(COMPOSE_PARAMS['listen'])}/healthz" in probe


def test_migrate_creates_indexes_then_seeds(services: dict[str, dict[str, Any]]) -> None:
    command = services["migrate"]["command"]
    assert command[:2] == ["sh", "-c"]
    assert re.fullmatch(r"restengine indexes && restengine seed", command[2])
    assert services["migrate"]["image"] == services["app1"]["image"]


def test_dockerfile_runs_gunicorn_with_the_packaged_config(
    repo_root: Path, services: dict[str, dict[str, Any]]
) -> None:
    dockerfile = (repo_root / "Dockerfile").read_text()
    for app in APPS:
        assert services[app]["build"]["context"] == "."
    assert re.search(r"^FROM python:3\.11-slim\s*$", dockerfile, re.MULTILINE)
    # The sources are deleted once installed: the image runs only what the package ships.
    assert re.search(r"pip install [^\n]*\.\[gevent\][^\n]*\\\n\s*&& rm -rf src ", dockerfile)
    # Only the build's inputs are copied in: nothing from the repository is read at run time.
    copied = re.findall(r"^COPY (.+)$", dockerfile, re.MULTILINE)
    assert copied == ["pyproject.toml setup.cfg README.md ./", "src ./src"], copied
    user = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert user and user[-1].split(":")[0] not in {"root", "0"}, "the image must not run as root"
    cmd = re.findall(r"^CMD (.+)$", dockerfile, re.MULTILINE)
    assert len(cmd) == 1
    argv = json.loads(cmd[0])  # exec form: gunicorn is PID 1 and gets SIGTERM itself
    assert argv[0] == "gunicorn"
    assert argv[argv.index("--config") + 1] == PACKAGED_CONFIG == "python:restengine.ops.gunicorn_conf"
    bind = argv[argv.index("--bind") + 1]
    assert re.search(rf"^EXPOSE {_port(bind)}\s*$", dockerfile, re.MULTILINE)
    for app in APPS:
        assert services[app]["environment"]["RESTENGINE_BIND"] == bind, app


def test_dockerignore_keeps_local_state_out_of_the_image(repo_root: Path) -> None:
    ignored = {
        line.strip()
        for line in (repo_root / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", "var", ".git", "tests"} <= ignored
    assert ignored & {"__pycache__", "**/__pycache__"}


def test_apps_get_longer_to_stop_than_gunicorn_waits_for_requests(services: dict[str, dict[str, Any]]) -> None:
    graceful = _gunicorn_settings()["graceful_timeout"]
    for app in APPS:
        assert _duration(services[app]["stop_grace_period"]) > graceful, app


def test_apps_require_a_shared_secret_key() -> None:
    import yaml

    compose = yaml.safe_load((Path(__file__).resolve().parents[2] / "docker-compose.yml").read_text())
    for name in ("app1", "app2"):
        value = compose["services"][name]["environment"]["RESTENGINE_SECRET_KEY"]
        assert value.startswith("${RESTENGINE_SECRET_KEY:?"), "required, never a default baked into the file"
