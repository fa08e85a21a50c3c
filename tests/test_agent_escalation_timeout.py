"""An escalation nobody answers takes the configured safe default after its timeout (24 h by
default), on Temporal's time-skipping server, where the day passes in moments."""

from __future__ import annotations

import contextlib
import uuid
from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from keel.app.devstack import SEARCH_ATTRIBUTES
from keel.auth import ensure_tenant
from keel.clients import Clients
from keel.settings import Settings
from tests.support.agents import agent_request
from worker import build_worker
from workflows.agents import AgentTeamWorkflow


async def _register_search_attributes(env: WorkflowEnvironment) -> None:
    """The time-skipping server starts without Keel's search attributes; runs upsert them."""
    kinds = {
        "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "Double": IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
    }
    for name, kind in SEARCH_ATTRIBUTES.items():
        with contextlib.suppress(RPCError):  # already registered by an earlier test
            await env.client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(
                    namespace=env.client.namespace, search_attributes={name: kinds[kind]}
                )
            )


@pytest.mark.parametrize(
    ("default", "status"), [("reject", "escalation_expired"), ("approve", "approved")]
)
async def test_unanswered_escalation_takes_the_safe_default_after_a_day(
    default: str,
    status: str,
    time_skipping: WorkflowEnvironment,
    clients: Clients,
    settings: Settings,
    tenant: str,
) -> None:
    # The offline provider's critic verdicts are unreadable, so they count as rejections: the
    # first one calls a person.
    tenant_id = await ensure_tenant(clients.engine, tenant)
    request = agent_request(
        settings,
        tenant,
        tenant_id,
        team="analysis",
        escalate_after_rejections=1,
        on_escalation_timeout=default,
    )
    assert request.team.limits.escalation_timeout_seconds == 86_400
    await _register_search_attributes(time_skipping)
    async with build_worker(time_skipping.client, "cpu", clients, settings):
        before = await time_skipping.get_current_time()
        result = await time_skipping.client.execute_workflow(
            AgentTeamWorkflow.run,
            request,
            id=f"agents-timeout-{uuid.uuid4().hex[:8]}",
            task_queue=settings.task_queue_cpu,
        )
        elapsed = await time_skipping.get_current_time() - before

    assert result.status == status
    assert elapsed >= timedelta(hours=24)
    [decision] = result.decisions
    assert (decision.action, decision.by, decision.timed_out) == (default, "timeout", True)
    assert decision.reason == "critic_rejections"
    assert result.llm_calls == 3  # planner, analyst, critic; nothing ran while it waited
    assert result.answer == (result.draft if default == "approve" else "")
