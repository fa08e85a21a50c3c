"""schemathesis against the live OpenAPI document: no 5xx, no response outside the schema."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.auth import create_key
from keel.clients import Clients
from keel.settings import Settings
from tests.conftest import running_workers, serve_api


@pytest.fixture
def live_api(base_settings: Settings) -> Iterator[str]:
    with serve_api(base_settings) as url:
        yield url


@pytest.mark.timeout(360)  # every route, with real runs behind the valid requests
async def test_schemathesis_finds_no_server_error_or_schema_violation(
    live_api: str, clients: Clients, base_settings: Settings, tenant: str
) -> None:
    key = await create_key(clients.engine, tenant)
    # Workers on the API's own queues, so the runs that valid requests start really finish.
    async with running_workers(clients, base_settings):
        await _fuzz(live_api, key)


async def _fuzz(live_api: str, key: str) -> None:
    command = [
        str(Path(sys.executable).parent / "st"),
        "run",
        f"{live_api}/openapi.json",
        "--checks",
        "not_a_server_error,status_code_conformance,content_type_conformance,"
        "response_schema_conformance",
        "--header",
        f"Authorization: Bearer {key}",
        "--max-examples",
        "12",
        "--phases",
        "examples,coverage,fuzzing",
        "--request-timeout",
        "40",
        "--seed",
        "1",
    ]
    result = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
