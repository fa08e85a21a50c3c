"""The embedded stack: clear errors on port conflicts, data that survives a restart."""

from __future__ import annotations

import socket
from pathlib import Path

import psycopg
import pytest
import redis

from keel.app.devstack import DevStack
from keel.app.processes import PortInUseError, free_port
from keel.settings import Ports, Settings


def _settings(data: Path, **ports: int) -> Settings:
    chosen = {
        "temporal": free_port(),
        "temporal_ui": free_port(),
        "postgres": free_port(),
        "redis": free_port(),
        "api": free_port(),
    }
    chosen.update(ports)
    return Settings(data_dir=data, ports=Ports(**chosen), _env_file=None)


def test_port_conflict_names_part_port_and_setting(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        stack = DevStack(_settings(tmp_path, redis=taken), headless=True)
        with pytest.raises(PortInUseError) as caught:
            stack.start()
    message = str(caught.value)
    assert caught.value.part == "redis"
    assert f"port {taken}" in message
    assert "KEEL_PORTS__REDIS" in message
    # A conflict is found before anything starts: nothing is left running.
    assert stack.services == []


def test_ui_port_conflict_is_reported(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        with pytest.raises(PortInUseError, match="KEEL_PORTS__TEMPORAL_UI"):
            DevStack(_settings(tmp_path, temporal_ui=taken)).start()


def test_restart_keeps_data(tmp_path: Path) -> None:
    config = _settings(tmp_path)
    with DevStack(config, headless=True):
        with psycopg.connect(
            host="127.0.0.1",
            port=config.ports.postgres,
            user="postgres",
            dbname="keel",
            autocommit=True,
        ) as conn:
            conn.execute("create table kept (v text)")
            conn.execute("insert into kept values ('still here')")
        redis.Redis(port=config.ports.redis).set("kept", b"still here")
    with DevStack(config, headless=True):
        with psycopg.connect(
            host="127.0.0.1", port=config.ports.postgres, user="postgres", dbname="keel"
        ) as conn:
            assert conn.execute("select v from kept").fetchone() == ("still here",)
        assert redis.Redis(port=config.ports.redis).get("kept") == b"still here"
    assert (tmp_path / "temporal.db").exists()
