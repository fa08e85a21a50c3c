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
