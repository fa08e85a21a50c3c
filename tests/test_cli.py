"""The `keel` command: help that lists the commands, keys that work once created."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx

from keel.settings import Settings
from tests.conftest import Caller

KEEL = str(Path(sys.executable).parent / "keel")


def _env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "KEEL_HOST": settings.host,
        "KEEL_PORTS__POSTGRES": str(settings.ports.postgres),
        "KEEL_PORTS__REDIS": str(settings.ports.redis),
        "KEEL_PORTS__TEMPORAL": str(settings.ports.temporal),
    }


def test_help_lists_the_commands() -> None:
    out = subprocess.run([KEEL, "--help"], capture_output=True, text=True, check=True).stdout
    for command in ["up", "check", "migrate", "keys"]:
        assert command in out


async def test_keys_create_prints_a_working_key_once(
    settings: Settings, api: httpx.AsyncClient, tenant: str
) -> None:
    result = await asyncio.to_thread(
        subprocess.run,
        [KEEL, "keys", "create", "--tenant", tenant],
        capture_output=True,
        text=True,
        env=_env(settings),
        check=True,
    )
    key = result.stdout.strip()
    assert key.startswith("keel_") and len(key) > 40
    assert "only its hash" in result.stderr
    response = await api.get("/v1/runs", headers=Caller(tenant, key).headers)
    assert response.status_code == 200


def test_keys_create_rejects_a_bad_tenant_name(settings: Settings) -> None:
    result = subprocess.run(
        [KEEL, "keys", "create", "--tenant", "Bad Name!"],
        capture_output=True,
        text=True,
        env=_env(settings),
        check=False,
    )
    assert result.returncode == 2
    assert "invalid tenant name" in result.stderr


async def test_api_keys_are_stored_hashed(clients: object, caller: Caller) -> None:
    from sqlalchemy import text

    from keel.auth import hash_key
    from keel.clients import Clients

    assert isinstance(clients, Clients)
    async with clients.engine.connect() as conn:
        rows = (await conn.execute(text("select key_hash, prefix from api_keys"))).all()
    hashes = {r[0] for r in rows}
    assert hash_key(caller.key) in hashes
    assert caller.key not in hashes
    assert all(len(r[1]) < 15 for r in rows)  # only a short display prefix is kept
