"""Rendering a Kustomize overlay: ``kubectl kustomize`` when it is installed, else the subset of Kustomize that
``deploy/kubernetes`` uses, in Python.

The subset: ``resources`` (files and directories), ``namespace``, ``labels`` (metadata only), ``images``,
``configMapGenerator``/``secretGenerator`` (``envs`` and ``literals``, ``behavior: merge``) with a content hash
suffix on the generated names and every reference renamed, and ``patches`` of JSON 6902 operations on a target
kind and name. Anything else is an error: the fallback never renders something Kustomize would not.
A test checks it against ``kubectl kustomize`` wherever both are there.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

KNOWN = {"apiVersion", "kind", "resources", "namespace", "labels", "images", "patches"} | {
    "configMapGenerator",
    "secretGenerator",
}
CLUSTER_SCOPED = {"Namespace"}
WORKLOADS = {"Deployment", "StatefulSet", "Job"}


def render(overlay: Path) -> list[dict[str, Any]]:
    """The objects ``overlay`` renders to: ``kubectl kustomize`` if on PATH, else :func:`render_in_python`."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return render_in_python(overlay)
    return render_with_kubectl(overlay, kubectl)


def render_with_kubectl(overlay: Path, kubectl: str = "kubectl") -> list[dict[str, Any]]:
    out = subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True, text=True, check=True, timeout=120)
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def render_in_python(directory: Path) -> list[dict[str, Any]]:
    """The objects of the kustomization in ``directory`` (see the module for what is supported)."""
    return _render(directory, {})


def _render(directory: Path, generated: dict[tuple[str, str], dict[str, str]]) -> list[dict[str, Any]]:
    """Render ``directory``; ``generated`` collects (kind, generator name) -> data of the generated objects,
    which an overlay above may merge into (their names change with their content)."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(spec) - KNOWN
    if unknown:
        raise ValueError(f"{directory}: the Python renderer does not support {sorted(unknown)}")
    objects: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        path = directory / entry
        if path.is_dir():
            objects += _render(path, generated)
        else:
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for kind, key in (("ConfigMap", "configMapGenerator"), ("Secret", "secretGenerator")):
        for generator in spec.get(key, []):
            _generate(directory, objects, generated, kind, generator)
    for patch in spec.get("patches", []):
        _patch(objects, patch)
    for image in spec.get("images", []):
        _retag(objects, image)
    for pair in spec.get("labels", []):
        if pair.get("includeSelectors") or pair.get("includeTemplates"):
            raise ValueError("labels: only metadata labels are supported")
        for obj in objects:
            obj.setdefault("metadata", {}).setdefault("labels", {}).update(pair["pairs"])
    if "namespace" in spec:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = spec["namespace"]
    return objects


def _data(directory: Path, generator: dict[str, Any]) -> dict[str, str]:
    data: dict[str, str] = {}
    for env in generator.get("envs", []):
        for line in (directory / env).read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                key, _, value = line.partition("=")
                data[key.strip()] = value
    for literal in generator.get("literals", []):
        key, _, value = literal.partition("=")
        data[key] = value
    return data


def _generate(
    directory: Path,
    objects: list[dict[str, Any]],
    generated: dict[tuple[str, str], dict[str, str]],
    kind: str,
    generator: dict[str, Any],
) -> None:
    """Make (or, ``behavior: merge``, remake) a generated object, named ``<name>-<hash of its content>``, and
    point every reference to it at that name."""
    name = generator["name"]
    data = _data(directory, generator)
    previous = None
    if generator.get("behavior", "create") == "merge":
        if (kind, name) not in generated:
            raise ValueError(f"{kind} {name}: nothing to merge into")
        data = {**generated[(kind, name)], **data}
        previous = next(o for o in objects if o["kind"] == kind and o["metadata"]["name"].startswith(f"{name}-"))
        objects.remove(previous)
    generated[(kind, name)] = data
    content = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()} if kind == "Secret" else data
    digest = hashlib.sha256(repr(sorted(content.items())).encode()).hexdigest()[:10]
    before: dict[str, Any] = {} if previous is None else previous["metadata"]
    metadata = {**before, "name": f"{name}-{digest}"}  # a merge keeps the labels and namespace it had
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": kind, "metadata": metadata, "data": content}
    if kind == "Secret":
        obj["type"] = "Opaque"
    objects.append(obj)
    # References name the generator as written, or (from a level below) its earlier hashed name.
    for old in {name, before.get("name", name)}:
        _rename_references(objects, kind, old, metadata["name"])


def _rename_references(objects: list[dict[str, Any]], kind: str, old: str, new: str) -> None:
    key = "configMapRef" if kind == "ConfigMap" else "secretRef"
    for obj in objects:
        if obj["kind"] not in WORKLOADS:
            continue
        pod = obj["spec"]["template"]["spec"]
        for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
            for source in container.get("envFrom", []):
                ref = source.get(key)
                if ref is not None and ref["name"] == old:
                    ref["name"] = new


def _patch(objects: list[dict[str, Any]], patch: dict[str, Any]) -> None:
    target = patch["target"]
    found = [o for o in objects if o["kind"] == target["kind"] and o["metadata"]["name"] == target["name"]]
    if len(found) != 1:
        raise ValueError(f"patch target {target} matches {len(found)} objects")
    for op in yaml.safe_load(patch["patch"]):
        if op["op"] not in ("replace", "add"):
            raise ValueError(f"patch op {op['op']!r} is not supported")
        *parents, last = [part for part in op["path"].split("/") if part]
        node: Any = found[0]
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = op["value"]
        else:
            node[last] = op["value"]


def _retag(objects: list[dict[str, Any]], image: dict[str, Any]) -> None:
    for obj in objects:
        if obj["kind"] not in WORKLOADS:
            continue
        pod = obj["spec"]["template"]["spec"]
        for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
            name = container["image"].split(":")[0]
            if name == image["name"]:
                container["image"] = f"{image.get('newName', name)}:{image['newTag']}"
