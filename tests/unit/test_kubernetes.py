"""deploy/kubernetes: each overlay rendered (``kubectl kustomize``, or the Python fallback), every object valid
against the Kubernetes schemas (offline, kubernetes-validate), and what operators rely on checked object by
object: unprivileged containers, probes, draining before SIGKILL, workers from the CPU limit, selectors that
select, the settings real ones."""

from __future__ import annotations

import base64
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from restengine.config import ConfigError, load_settings, setting_specs
from restengine.ops.settings import StackSettings
from tests.kustomize import render, render_in_python, render_with_kubectl

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ROOT / "deploy" / "kubernetes" / "overlays"
KUBERNETES = "1.31.0"  # the oldest release still supported upstream when this was written: valid there, valid later
WORKLOADS = ("Deployment", "StatefulSet", "Job")


@pytest.fixture(scope="module", params=["dev", "production"])
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(OVERLAYS / request.param)


def objects_of(rendered: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in rendered if obj["kind"] == kind]


def one(rendered: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [obj for obj in rendered if obj["kind"] == kind and obj["metadata"]["name"] == name]
    return found


def pods(rendered: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, its pod spec) for every workload."""
    for obj in rendered:
        if obj["kind"] in WORKLOADS:
            yield obj, obj["spec"]["template"]["spec"]


def normalized(rendered: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
    """Objects by (kind, name), generated names' hashes and the line breaks of Secret values set aside."""
    out = {}
    for obj in rendered:
        obj = json.loads(re.sub(r"(restengine-(?:config|secrets))-[a-z0-9]{10}", r"\1-HASH", json.dumps(obj)))
        if obj["kind"] == "Secret":
            obj["data"] = {k: base64.b64decode(v) for k, v in obj["data"].items()}
        out[(obj["kind"], obj["metadata"]["name"])] = obj
    return out


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed: nothing to compare with")
@pytest.mark.parametrize("name", ["dev", "production"])
def test_the_python_renderer_renders_what_kubectl_kustomize_does(name: str) -> None:
    assert normalized(render_in_python(OVERLAYS / name)) == normalized(render_with_kubectl(OVERLAYS / name))


def test_every_object_is_valid_against_the_kubernetes_schemas(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, rendered = overlay
    for obj in rendered:
        try:
            kubernetes_validate.validate(obj, KUBERNETES, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message} at {list(exc.path)}")


def test_every_container_runs_unprivileged_on_a_read_only_root(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, rendered = overlay
    for workload, pod in pods(rendered):
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        pod_context = pod.get("securityContext", {})
        assert pod_context.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        assert pod.get("automountServiceAccountToken") is False, where
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            context = {**pod_context, **container.get("securityContext", {})}
            named = f"{where} container {container['name']}"
            assert context.get("runAsNonRoot") is True and context.get("runAsUser", 0) != 0, f"{named} may run as root"
            assert context.get("allowPrivilegeEscalation") is False, named
            assert context.get("readOnlyRootFilesystem") is True, named
            assert context.get("capabilities", {}).get("drop") == ["ALL"], named
            assert {"requests", "limits"} <= set(container.get("resources", {})), f"{named} has no requests/limits"


def test_every_long_running_container_has_probes(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, rendered = overlay
    for workload, pod in pods(rendered):
        if workload["kind"] == "Job":
            continue
        for container in pod["containers"]:
            named = f"{workload['kind']}/{workload['metadata']['name']} container {container['name']}"
            assert "livenessProbe" in container and "readinessProbe" in container, f"{named} lacks a probe"


def test_the_app_is_probed_drains_and_follows_its_cpu_limit(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, rendered = overlay
    pod = one(rendered, "Deployment", "restengine")["spec"]["template"]["spec"]
    (app,) = pod["containers"]
    assert app["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert app["readinessProbe"]["httpGet"]["path"] == "/readyz"
    pause = int(app["lifecycle"]["preStop"]["exec"]["command"][1])
    conf = (ROOT / "src" / "restengine" / "ops" / "gunicorn_conf.py").read_text()
    graceful = int(re.search(r"^graceful_timeout = (\d+)", conf, re.M).group(1))  # type: ignore[union-attr]
    assert pod["terminationGracePeriodSeconds"] > pause + graceful, "SIGKILL would cut requests short"
    workers = next(env for env in app["env"] if env["name"] == "RESTENGINE_WORKERS")
    assert workers["valueFrom"]["resourceFieldRef"] == {
        "containerName": "app",
        "resource": "limits.cpu",
        "divisor": "1",
    }
    (indexes,) = pod["initContainers"]
    assert indexes["command"] == ["restengine", "indexes"] and indexes["image"] == app["image"]
    strategy = one(rendered, "Deployment", "restengine")["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxUnavailable"] == 0, "a rollout never drops capacity"


def test_selectors_select_the_pods_they_mean(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, rendered = overlay
    app = one(rendered, "Deployment", "restengine")
    labels = app["spec"]["template"]["metadata"]["labels"]
    assert app["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert one(rendered, "Service", "restengine")["spec"]["selector"].items() <= labels.items()
    assert (
        one(rendered, "PodDisruptionBudget", "restengine")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    )
    target = one(rendered, "HorizontalPodAutoscaler", "restengine")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "restengine")
    watcher = one(rendered, "Deployment", "restengine-watcher")
    assert watcher["spec"]["replicas"] == 1 and watcher["spec"]["strategy"]["type"] == "Recreate"
    assert watcher["spec"]["template"]["spec"]["containers"][0]["command"] == ["restengine", "watch"]
    watcher_labels = watcher["spec"]["template"]["metadata"]["labels"]
    assert not one(rendered, "Service", "restengine")["spec"]["selector"].items() <= watcher_labels.items()
    backend = one(rendered, "Ingress", "restengine")["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "restengine"


def test_the_settings_it_sets_are_restengines_and_valid(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, rendered = overlay
    # The worker's and the stack's settings, and what gunicorn's configuration reads itself (RESTENGINE_BIND...).
    conf = (ROOT / "src" / "restengine" / "ops" / "gunicorn_conf.py").read_text()
    known = {spec.key for spec in [*setting_specs(), *setting_specs(StackSettings)]} | set(
        re.findall(r"RESTENGINE_\w+", conf)
    )
    settings: dict[str, str] = {}
    for obj in [*objects_of(rendered, "ConfigMap"), *objects_of(rendered, "Secret")]:
        data = (
            obj["data"]
            if obj["kind"] == "ConfigMap"
            else {k: base64.b64decode(v).decode() for k, v in obj["data"].items()}
        )
        unknown = sorted(key for key in data if key.startswith("RESTENGINE_") and key not in known)
        assert not unknown, f"{obj['metadata']['name']}: no such settings {unknown}"
        settings.update(data)
    settings.setdefault("RESTENGINE_SECRET_KEY", "x" * 32)  # production's Secret is made out of band
    try:
        load_settings(settings, environ={})
    except ConfigError as exc:
        pytest.fail(f"the manifests' settings do not load: {exc}")


def test_production_runs_three_replicas_apart_and_keeps_its_secrets_out_of_git() -> None:
    rendered = render(OVERLAYS / "production")
    app = one(rendered, "Deployment", "restengine")
    assert app["spec"]["replicas"] >= 3
    assert one(rendered, "HorizontalPodAutoscaler", "restengine")["spec"]["minReplicas"] >= 3
    spread = app["spec"]["template"]["spec"]["topologySpreadConstraints"][0]
    assert (spread["topologyKey"], spread["whenUnsatisfiable"]) == ("kubernetes.io/hostname", "DoNotSchedule")
    assert not objects_of(rendered, "Secret"), "production's Secret is created out of band, never rendered from git"
    config = objects_of(rendered, "ConfigMap")[0]["data"]
    assert not {"MONGODB_URI", "REDIS_URL", "RESTENGINE_SECRET_KEY"} & set(config), "credentials belong in the Secret"
    assert not objects_of(rendered, "StatefulSet"), "production uses an external MongoDB and Redis"
