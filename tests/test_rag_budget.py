"""A RAG run's model calls share one budget and one bill: query expansion, the answer and a
regeneration are capped together by the run's budget, and the answer's cost is their sum
(what the ledger holds for the run). Real Temporal, Postgres, Redis; the real `anthropic`
SDK against the provider harness."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text
from temporalio.worker import Worker

from keel.auth import ensure_tenant
from keel.clients import Clients
from keel.contracts.gateway import CallContext
from keel.contracts.guards import RunBudget
from keel.contracts.rag import RagAnswer, RagConfig, RagQueryRequest
from keel.runs import gateway_config
from keel.settings import Settings
from tests.support.provider_harness import ProviderHarness
from tests.support.rag_corpus import seed
from workflows.rag import RagQueryWorkflow

QUESTION = "How much is the hotel reimbursed per night?"
# Expansion first, then the answer; no answer cache, so every run calls the provider.
RAG = RagConfig(expand_query=True, answer_cache=False, answer_model="claude-haiku-4-5")


async def _ask(clients: Clients, settings: Settings, context: CallContext, wid: str) -> RagAnswer:
    return await clients.temporal.execute_workflow(
        RagQueryWorkflow.run,
        RagQueryRequest(
            question=QUESTION, context=context, gateway=gateway_config(settings), rag=RAG
        ),
        id=wid,
        task_queue=settings.task_queue_cpu,
        execution_timeout=timedelta(seconds=60),
    )


async def _ledger_usd(clients: Clients, wid: str) -> float:
    async with clients.engine.connect() as conn:
        total = await conn.execute(
            text("SELECT coalesce(sum(cost_usd), 0) FROM llm_calls WHERE workflow_id = :w"),
            {"w": wid},
        )
        return float(total.scalar_one())


async def test_the_answer_reports_every_call_of_the_run(
    clients: Clients,
    gw_settings: Settings,
    gw_workers: list[Worker],
    harness: ProviderHarness,
    tenant: str,
) -> None:
    tenant_id = await ensure_tenant(clients.engine, tenant)
    await seed(clients.engine, tenant_id)
    harness.input_tokens, harness.output_tokens = 1000, 40
    harness.reply_text = "Hotel costs are reimbursed up to 150 EUR per night [Source 1]."
    context = CallContext(tenant=tenant, tenant_id=str(tenant_id), feature="rag")
    wid = f"rag-{uuid.uuid4().hex}"

    answer = await _ask(clients, gw_settings, context, wid)

    assert len(harness.requests_for("anthropic")) == 2  # the expansion and the answer
    assert answer.usage.input_tokens == 2000 and answer.usage.output_tokens == 80
    assert answer.cost_usd > 0
    assert answer.cost_usd == pytest.approx(await _ledger_usd(clients, wid))


async def test_the_run_budget_caps_the_run_not_each_call(
    clients: Clients,
    gw_settings: Settings,
    gw_workers: list[Worker],
    harness: ProviderHarness,
    tenant: str,
) -> None:
    tenant_id = await ensure_tenant(clients.engine, tenant)
    await seed(clients.engine, tenant_id)
    # The expansion (estimated ~150 tokens) fits the cap and spends 5,010; the answer
    # (estimated well under 5,000 on its own) would take the run past it.
    harness.input_tokens, harness.output_tokens = 5000, 10
    context = CallContext(
        tenant=tenant,
        tenant_id=str(tenant_id),
        feature="rag",
        run_budget=RunBudget(max_tokens=5000),
    )
    wid = f"rag-{uuid.uuid4().hex}"

    answer = await _ask(clients, gw_settings, context, wid)

    assert len(harness.requests_for("anthropic")) == 1  # the answer was never asked for
    assert answer.status == "failed" and "> max_tokens 5000" in answer.answer
    assert answer.usage.input_tokens == 5000
    assert answer.cost_usd == pytest.approx(await _ledger_usd(clients, wid))
