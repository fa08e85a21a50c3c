"""Kill the worker process in the middle of an agent run (SIGKILL, mid tool call), start a new
one: the run goes on from where it was, and no model call that had completed runs again."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.api.enums.v1 import EventType

from keel.auth import ensure_tenant
from keel.clients import Clients
from keel.contracts.agents import ToolConfig
from keel.settings import Settings
from tests.support.agents import (
    RoleScript,
    agent_request,
    answer,
    ledger,
    plan,
    tool,
    transcript,
    verdict,
)
from tests.support.provider_harness import ProviderHarness
from tests.support.slow_page import SlowPage
from tests.support.slow_page import slow_page as serve_slow_page
from workflows.agents import AgentTeamWorkflow

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def slow_page() -> Iterator[SlowPage]:
    with serve_slow_page() as page:
        yield page


def _worker_env(settings: Settings, harness: ProviderHarness) -> dict[str, str]:
    return {
        **os.environ,
        "KEEL_HOST": settings.host,
        "KEEL_PORTS__TEMPORAL": str(settings.ports.temporal),
        "KEEL_PORTS__POSTGRES": str(settings.ports.postgres),
        "KEEL_PORTS__REDIS": str(settings.ports.redis),
        "KEEL_TASK_QUEUE_CPU": settings.task_queue_cpu,
        "KEEL_TASK_QUEUE_GPU": settings.task_queue_gpu,
        "KEEL_CIRCUIT_SCOPE": settings.circuit_scope,
        "KEEL_ANTHROPIC_API_KEY": "test-anthropic",
        "KEEL_ANTHROPIC_BASE_URL": harness.anthropic_base_url,
        "KEEL_LOG_JSON": "false",
        "KEEL_LOG_LEVEL": "WARNING",
    }


def _start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "worker.py", "--queue", "cpu"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.timeout(240)
async def test_killed_worker_is_replaced_and_the_run_continues_without_repeating_calls(
    clients: Clients, settings: Settings, tenant: str, slow_page: SlowPage
) -> None:
    with ProviderHarness() as harness:
        script = RoleScript(
            planner=[plan(("researcher", "Read the refund page."))],
            researcher=[
                tool("http_get", url=f"http://{slow_page.address}/refunds"),
                answer("Refunds are accepted within 30 days."),
            ],
            critic=[verdict(True, "supported by the page")],
        )
        harness.reply_fn = script
        config = settings.model_copy(
            update={
                "anthropic_api_key": SecretStr("x"),  # `gateway_config` lists the provider
                "anthropic_base_url": harness.anthropic_base_url,
            }
        )
        tenant_id = await ensure_tenant(clients.engine, tenant)
        request = agent_request(
            config,
            tenant,
            tenant_id,
            task="How long is the refund window?",
            tools=ToolConfig(
                http_allow_hosts=[slow_page.address], http_private_hosts=[slow_page.address]
            ),
        )
        env = _worker_env(settings, harness)
        first = _start_worker(env)
        second: subprocess.Popen[bytes] | None = None
        try:
            wid = f"agents-kill-{uuid.uuid4().hex[:8]}"
            handle = await clients.temporal.start_workflow(
                AgentTeamWorkflow.run,
                request,
                id=wid,
                task_queue=settings.task_queue_cpu,
                execution_timeout=timedelta(minutes=3),
            )
            # Planner and researcher have answered; the page fetch is in flight on `first`.
            arrived = await asyncio.to_thread(slow_page.first_arrived.wait, 90)
            assert arrived, "the run never reached its tool call"
            calls_before_kill = len(harness.requests)
            assert calls_before_kill == 2

            first.send_signal(signal.SIGKILL)
            assert await asyncio.to_thread(first.wait, 10) == -signal.SIGKILL

            second = _start_worker(env)
            result = await asyncio.wait_for(handle.result(), timeout=150)
        finally:
            _stop(first)
            if second is not None:
                _stop(second)

    assert result.status == "accepted"
    assert result.answer == "Refunds are accepted within 30 days."
    # Every model call ran exactly once: two before the kill, two after.
    assert len(harness.requests) == result.llm_calls == 4
    assert [script.count(r) for r in ("planner", "researcher", "critic")] == [1, 2, 1]
    rows = await ledger(clients, wid)
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}
    # The interrupted fetch was retried by the new worker (heartbeat timeout), once.
    assert slow_page.hits == 2
    events = [e async for e in handle.fetch_history_events()]
    attempts = [
        e.activity_task_started_event_attributes.attempt
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        and e.activity_task_started_event_attributes.attempt > 1
    ]
    assert attempts == [2]
    turns = await transcript(clients, wid)
    assert [r["seq"] for r in turns] == list(range(1, len(turns) + 1))
    assert sum(1 for r in turns if r["kind"] == "llm") == 4
