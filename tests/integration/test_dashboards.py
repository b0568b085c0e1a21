"""The monitoring shipped with docker-compose (monitoring/): every metric the Grafana dashboard queries is one
the service exports, with a suffix its type has; Prometheus scrapes the instances compose runs, at the path the
app serves; the dashboard's data source is the one Grafana is given."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask

from tests.integration.api_helpers import legacy_served

# A counter's family is declared with or without its _total (prometheus_client: without, once it has samples).
SUFFIXES = {"histogram": ("_bucket", "_count", "_sum"), "counter": ("_total", ""), "gauge": ("",)}
OURS = re.compile(r"\b((?:http_server|mongodb|restengine)_[a-z_]+)\b")


@pytest.fixture
def app(mongodb_uri: str, redis_url: str) -> Iterator[Flask]:
    with legacy_served(mongodb_uri, redis_url) as app:
        yield app


def exported(app: Flask) -> dict[str, str]:
    """Metric family -> type, as a scrape of the app declares them."""
    client = app.test_client()
    client.get("/api/customers/ABC123")
    text = client.get("/metrics").get_data(as_text=True)
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.MULTILINE))


def queries(repo_root: Path) -> list[str]:
    dashboard = json.loads((repo_root / "monitoring/grafana/dashboards/restengine.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_every_metric_the_dashboard_queries_is_exported(app: Flask, repo_root: Path) -> None:
    families = exported(app)
    used = {name for expr in queries(repo_root) for name in OURS.findall(expr)}
    assert len(used) >= 10
    for name in sorted(used):
        matches = [
            family
            for family, kind in families.items()
            for suffix in SUFFIXES.get(kind, ("",))
            if name == family + suffix and (kind != "counter" or name.endswith("_total"))
        ]
        assert matches, f"the dashboard queries {name}, which /metrics does not export ({sorted(families)})"


def test_the_dashboard_shows_what_operators_look_at(repo_root: Path) -> None:
    exprs = " ".join(queries(repo_root))
    for wanted in ("http_server_request_duration_seconds_bucket", "mongodb_pool_waiters",
                   "mongodb_pool_checkout_wait_seconds_bucket", "restengine_cache_answers_total",
                   'status=~"503|429"'):  # fmt: skip
        assert wanted in exprs


def compose(repo_root: Path) -> dict[str, Any]:
    loaded = yaml.safe_load((repo_root / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_prometheus_scrapes_each_instance_where_the_app_serves_metrics(repo_root: Path) -> None:
    config = yaml.safe_load((repo_root / "monitoring/prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "restengine")
    assert job["metrics_path"] == "/metrics"
    targets = {t for group in job["static_configs"] for t in group["targets"]}
    services = compose(repo_root)["services"]
    assert targets == {f"{name}:8000" for name in ("app1", "app2")}
    assert all(name.split(":")[0] in services for name in targets)
    assert services["app1"]["environment"]["RESTENGINE_BIND"].endswith(":8000")


def test_the_monitoring_services_are_optional_and_mount_files_that_exist(repo_root: Path) -> None:
    services = compose(repo_root)["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"], "only with --profile monitoring"
        for volume in services[name]["volumes"]:
            assert (repo_root / volume.split(":")[0]).exists(), volume
        assert all(port.startswith("127.0.0.1:") for port in services[name]["ports"])
    source = yaml.safe_load((repo_root / "monitoring/grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = source["datasources"][0]["uid"]
    dashboard = json.loads((repo_root / "monitoring/grafana/dashboards/restengine.json").read_text())
    assert {panel["datasource"]["uid"] for panel in dashboard["panels"]} == {uid}
    assert source["datasources"][0]["url"] == "http://prometheus:9090"
