"""docker-compose.yml describes the production stack the code expects (no engine runs here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from keel.app.devstack import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parent.parent


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_every_expected_service_is_declared() -> None:
    services = _compose()["services"]
    for name in [
        "temporal",
        "temporal-db",
        "temporal-ui",
        "postgres",
        "redis",
        "api",
        "worker-cpu",
        "worker-gpu",
    ]:
        assert name in services, name
    assert "pgvector" in services["postgres"]["image"]
    assert services["worker-cpu"]["command"][-2:] == ["--queue", "cpu"]
    assert services["worker-gpu"]["command"][-2:] == ["--queue", "gpu"]
    devices = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]


def test_keel_services_get_every_connection_setting() -> None:
    services = _compose()["services"]
    for name in ["api", "worker-cpu", "worker-gpu", "migrate"]:
        env = services[name]["environment"]
        for key in ["KEEL_TEMPORAL_ADDRESS", "KEEL_DATABASE_URL", "KEEL_REDIS_URL"]:
            assert env.get(key), (name, key)


def test_search_attributes_are_registered() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for name, kind in SEARCH_ATTRIBUTES.items():
        assert f"--name {name} --type {kind}" in text


def test_no_secret_is_written_in_the_file() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for line in text.splitlines():
        if re.search(r"(PASSWORD|API_KEY|SECRET)\w*:", line):
            value = line.split(":", 1)[1].strip()
            assert value.startswith("${") or "${" in value, line
    assert not re.search(r"sk-[A-Za-z0-9]{10,}", text)


def test_observability_stack_is_wired() -> None:
    """Traces reach Jaeger through the collector; Prometheus scrapes the API and the workers;
    Grafana is provisioned with Keel's dashboard over that Prometheus."""
    services = _compose()["services"]
    for name in ("otel-collector", "jaeger", "prometheus", "grafana"):
        assert name in services, name
    env = services["api"]["environment"]
    assert "otel-collector:4318" in env["OTEL_EXPORTER_OTLP_ENDPOINT"]
    assert services["worker-cpu"]["environment"]["KEEL_WORKER_METRICS_PORT"] == "9100"

    collector = yaml.safe_load((ROOT / "deploy/otel/collector.yaml").read_text())
    assert collector["service"]["pipelines"]["traces"]["exporters"] == ["otlp/jaeger"]
    scrape = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {
        t for job in scrape["scrape_configs"] for s in job["static_configs"] for t in s["targets"]
    }
    assert {"api:8000", "worker-cpu:9100", "worker-gpu:9100"} <= targets

    import json

    from keel import telemetry

    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/keel.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    metrics = {
        m._name  # noqa: SLF001 - the registered metric names
        for m in (
            telemetry.LLM_COST,
            telemetry.CACHE_LOOKUPS,
            telemetry.HTTP_LATENCY,
            telemetry.CIRCUIT_STATE,
            telemetry.TENANT_BUDGET_USED,
        )
    }
    for name in metrics:  # every panel reads a metric Keel really exports
        assert name in exprs, name
