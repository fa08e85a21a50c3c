"""History scenario: AgentTeamWorkflow on the offline provider; the critic's unreadable verdict
counts as a rejection, a person is asked, and approves through the `approve` update."""

from __future__ import annotations

import asyncio
import uuid

from temporalio.client import WorkflowUpdateFailedError

from agents.registry import TEAMS, resolve_team
from keel.auth import ensure_tenant
from keel.clients import Clients
from keel.contracts.agents import AgentLimits, AgentRunRequest
from keel.contracts.escalation import ApproveInput
from keel.contracts.gateway import CallContext
from keel.runs import gateway_config
from keel.settings import Settings
from workflows.agents import AgentTeamWorkflow


async def scenario(clients: Clients, settings: Settings) -> str:
    tenant_id = await ensure_tenant(clients.engine, "history")
    workflow_id = f"history-agent-team-{uuid.uuid4().hex[:8]}"
    handle = await clients.temporal.start_workflow(
        AgentTeamWorkflow.run,
        AgentRunRequest(
            task="What is 15% of 1200?",
            team=resolve_team(TEAMS["analysis"], AgentLimits(escalate_after_rejections=1)),
            context=CallContext(tenant="history", tenant_id=str(tenant_id), feature="history"),
            gateway=gateway_config(settings),
        ),
        id=workflow_id,
        task_queue=settings.task_queue_cpu,
    )
    for _ in range(200):  # until the escalation is pending: the validator refuses before
        try:
            await handle.execute_update(
                AgentTeamWorkflow.approve, ApproveInput(note="recorded", by="history")
            )
            break
        except WorkflowUpdateFailedError:
            await asyncio.sleep(0.1)
    await handle.result()
    return workflow_id
