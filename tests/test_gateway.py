"""The model-call path end to end: real Temporal, Postgres, Redis; providers via the harness."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from temporalio.api.enums.v1 import EventType
from temporalio.worker import Worker

from activities.gateway_steps import report_outcome
from keel.auth import ensure_tenant
from keel.clients import Clients
from keel.contracts.gateway import (
    CallContext,
    CircuitOutcome,
    GatewayConfig,
    ModelCall,
    ModelCallRequest,
    ModelCallResult,
)
from keel.contracts.guards import CircuitConfig, CircuitState, RunBudget, Transition
from keel.contracts.llm import ChatMessage
from keel.runs import gateway_config
from keel.settings import Settings
from tests.support.provider_harness import ProviderHarness
from workflows.circuit import EVENTS_BEFORE_CONTINUE, CircuitBreakerWorkflow
from workflows.llm import ModelCallWorkflow, circuit_workflow_id

QUESTION = "What is the refund window for annual plans?"


@pytest.fixture
def harness() -> Iterator[ProviderHarness]:
    """conftest's harness with this module's reply (gw_settings, gw_workers: conftest's)."""
    with ProviderHarness() as started:
        started.reply_text = "Annual plans can be refunded within 30 days."
        yield started


@pytest.fixture
async def context(clients: Clients, tenant: str) -> CallContext:
    tenant_id = await ensure_tenant(clients.engine, tenant)
    return CallContext(tenant=tenant, tenant_id=str(tenant_id), feature="test")


def _config(gw_settings: Settings, **changes: Any) -> GatewayConfig:
    config = gateway_config(gw_settings).model_copy(
        update={"circuit_scope": f"{uuid.uuid4().hex[:8]}-"}
    )
    return config.model_copy(update=changes)


def _call(question: str = QUESTION, **changes: Any) -> ModelCall:
    return ModelCall(
        messages=[ChatMessage(role="user", content=question)], tier="cheap", max_tokens=64
    ).model_copy(update=changes)


async def _run(
    clients: Clients, settings: Settings, request: ModelCallRequest, wid: str | None = None
) -> ModelCallResult:
    return await clients.temporal.execute_workflow(
        ModelCallWorkflow.run,
        request,
        id=wid or f"call-{uuid.uuid4()}",
        task_queue=settings.task_queue_cpu,
        execution_timeout=timedelta(seconds=90),
    )


async def _ledger(clients: Clients, workflow_id: str) -> list[dict[str, Any]]:
    async with clients.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "select provider, model, status, error_type, cost_usd, cache_layer, tokens_in, "
                "tokens_out from llm_calls where workflow_id = :w order by id"
            ),
            {"w": workflow_id},
        )
        return [dict(r._mapping) for r in rows]


async def test_primary_down_falls_back_and_ledger_holds_every_attempt(
    clients: Clients,
    gw_settings: Settings,
    gw_workers: list[Worker],
    harness: ProviderHarness,
    context: CallContext,
) -> None:
    harness.fail_next("anthropic", "server_error", times=3)
    wid = f"fallback-{uuid.uuid4()}"
    result = await _run(
        clients,
        gw_settings,
        ModelCallRequest(call=_call(), context=context, config=_config(gw_settings)),
        wid,
    )

    assert result.ok
    assert result.model == "gpt-4o-mini" and result.provider == "openai"
    assert [(a.model, a.outcome) for a in result.attempts] == [
        ("claude-haiku-4-5", "failed"),
        ("gpt-4o-mini", "ok"),
    ]
    assert result.attempts[0].error_type == "ProviderUnavailable"
    assert len(harness.requests_for("anthropic")) == 3  # Temporal's 3 attempts, no SDK retry

    # The history shows the failed activity ran three attempts before the fallback.
    events = [e async for e in clients.temporal.get_workflow_handle(wid).fetch_history_events()]
    scheduled = {
        e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    provider_attempts = [
        e.activity_task_started_event_attributes.attempt
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        and scheduled[e.activity_task_started_event_attributes.scheduled_event_id]
        == "provider_complete"
    ]
    assert provider_attempts == [3, 1]  # anthropic's third attempt failed, then openai

    ledger = await _ledger(clients, wid)
    assert [(r["provider"], r["status"]) for r in ledger] == [
        ("anthropic", "error"),
        ("anthropic", "error"),
        ("anthropic", "error"),
        ("openai", "ok"),
    ]
    assert all(r["error_type"] == "ProviderUnavailable" for r in ledger[:3])
    assert float(ledger[3]["cost_usd"]) == pytest.approx(float(result.cost_usd))
    assert float(ledger[3]["cost_usd"]) > 0


async def test_non_retryable_error_fails_fast_with_its_type(
    clients: Clients,
    gw_settings: Settings,
    gw_workers: list[Worker],
    harness: ProviderHarness,
    context: CallContext,
) -> None:
    harness.fail_next("anthropic", "unauthorized")
    result = await _run(
        clients,
        gw_settings,
        ModelCallRequest(call=_call(), context=context, config=_config(gw_settings)),
    )
    assert not result.ok
    assert result.stop_reason == "all_providers_failed"
    assert result.detail.startswith("ProviderRejected")
    assert len(harness.requests_for("anthropic")) == 1
    assert harness.requests_for("openai") == []


async def test_circuit_opens_skips_provider_then_half_open_probe_closes_it(
    clients: Clients,
    gw_settings: Settings,
    gw_workers: list[Worker],
    harness: ProviderHarness,
    context: CallContext,
) -> None:
    config = _config(
        gw_settings,
        circuit=CircuitConfig(failure_threshold=2, cooldown=timedelta(seconds=3)),
    )
    call = _call(cache=False)
    harness.fail_next("anthropic", "overloaded", times=3)
    first = await _run(
        clients, gw_settings, ModelCallRequest(call=call, context=context, config=config)
    )
    assert first.ok and first.provider == "openai"

    breaker = clients.temporal.get_workflow_handle(
        circuit_workflow_id(config.circuit_scope, "claude-haiku-4-5")
    )
    state = await breaker.query(CircuitBreakerWorkflow.status)
    assert isinstance(state, CircuitState) and state.state == "open"

    before = len(harness.requests_for("anthropic"))
    second = await _run(
        clients, gw_settings, ModelCallRequest(call=call, context=context, config=config)
    )
    assert second.ok and second.provider == "openai"
    assert second.attempts[0].outcome == "circuit_open"
    assert len(harness.requests_for("anthropic")) == before  # skipped without a request

    await asyncio.sleep(3.5)  # the cool-down
    third = await _run(
        clients, gw_settings, ModelCallRequest(call=call, context=context, config=config)
    )
    assert third.ok and third.provider == "anthropic"  # the half-open probe succeeded
    transitions = await breaker.query(CircuitBreakerWorkflow.history)
    assert [(t.from_state, t.to_state) for t in transitions if isinstance(t, Transition)] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]


async def test_a_breaker_keeps_its_transitions_across_continue_as_new(
    clients: Clients, gw_settings: Settings, gw_workers: list[Worker]
) -> None:
    # A storm's reports can pass the event limit while the breaker is open: after it starts
    # afresh, its history must still say how it opened.
    circuit_id = f"{uuid.uuid4().hex[:8]}-claude-haiku-4-5"
    config = CircuitConfig(failure_threshold=2, cooldown=timedelta(hours=1))
    failed = CircuitOutcome(success=False, at_attempt_started=datetime.now(UTC).isoformat())
    for _ in range(2):
        await report_outcome(
            clients.temporal,
            clients.redis,
            circuit_id,
            config,
            task_queue=gw_settings.task_queue_cpu,
            success=False,
            admitted_at=failed.at_attempt_started,
        )
    breaker = clients.temporal.get_workflow_handle(circuit_id)
    first_run = (await breaker.describe()).run_id
    for _ in range(0, EVENTS_BEFORE_CONTINUE + 200, 100):
        await asyncio.gather(
            *(breaker.signal(CircuitBreakerWorkflow.report, failed) for _ in range(100))
        )
        if (await breaker.describe()).run_id != first_run:
            break
    # The last burst's signals may still be in the workflow's task when the loop ends (CI saw
    # it): the breaker continues as new on its next task, so give that task time to run.
    for _ in range(100):
        if (await breaker.describe()).run_id != first_run:
            break
        await asyncio.sleep(0.2)
    assert (await breaker.describe()).run_id != first_run, "the breaker never continued as new"
    state = await breaker.query(CircuitBreakerWorkflow.status)
    transitions = await breaker.query(CircuitBreakerWorkflow.history)
    assert isinstance(state, CircuitState) and state.state == "open"
    assert [(t.from_state, t.to_state) for t in transitions if isinstance(t, Transition)] == [
        ("closed", "open")
    ]


async def test_run_budget_stops_before_the_call_that_would_exceed_it(
    clients: Clients,
    gw_settings: Settings,
    gw_workers: list[Worker],
    harness: ProviderHarness,
    context: CallContext,
) -> None:
    capped = context.model_copy(update={"run_budget": RunBudget(max_usd=0.01)})
    expensive = _call(tier="expensive", max_tokens=1024)  # opus: 1024 output tokens ~ $0.08
    result = await _run(
        clients,
        gw_settings,
        ModelCallRequest(call=expensive, context=capped, config=_config(gw_settings)),
    )
    assert not result.ok
    assert result.stop_reason == "budget_exhausted"
    assert "usd" in result.detail.lower() or "$" in result.detail
    assert harness.requests == []  # nothing was spent


async def test_tenant_budget_soft_alert_then_hard_stop(
    clients: Clients,
    gw_settings: Settings,
    gw_workers: list[Worker],
    harness: ProviderHarness,
    context: CallContext,
) -> None:
    async with clients.engine.begin() as conn:
        await conn.execute(
            text("insert into budgets (tenant_id, limit_usd) values (:t, 1.00)"),
            {"t": uuid.UUID(context.tenant_id)},
        )
        await conn.execute(
            text(
                "insert into llm_calls (call_key, tenant_id, feature, provider, model, cost_usd) "
                "values (:k, :t, 'seed', 'anthropic', 'claude-haiku-4-5', 0.75)"
            ),
            {"k": f"seed-{uuid.uuid4()}", "t": uuid.UUID(context.tenant_id)},
        )
    soft = await _run(
        clients,
        gw_settings,
        ModelCallRequest(call=_call(cache=False), context=context, config=_config(gw_settings)),
    )
    assert soft.ok
    assert soft.tenant_budget is not None and soft.tenant_budget.level == "soft_alert"

    async with clients.engine.begin() as conn:
        await conn.execute(
            text(
                "insert into llm_calls (call_key, tenant_id, feature, provider, model, cost_usd) "
                "values (:k, :t, 'seed', 'anthropic', 'claude-haiku-4-5', 0.30)"
            ),
            {"k": f"seed-{uuid.uuid4()}", "t": uuid.UUID(context.tenant_id)},
        )
    calls_before = len(harness.requests)
    hard = await _run(
        clients,
        gw_settings,
        ModelCallRequest(call=_call(cache=False), context=context, config=_config(gw_settings)),
    )
    assert not hard.ok
    assert hard.stop_reason == "tenant_budget_exhausted"
    assert hard.tenant_budget is not None and hard.tenant_budget.level == "hard_stop"
    assert len(harness.requests) == calls_before


async def test_exact_and_semantic_hits_never_cross_tenants(
    clients: Clients,
    gw_settings: Settings,
    gw_workers: list[Worker],
    harness: ProviderHarness,
    context: CallContext,
) -> None:
    config = _config(gw_settings)
    question = "Which NDA has to be signed before a client meeting?"
    paraphrase = "Before a client meeting, which NDA has to be signed?"
    harness.reply_text = "The mutual NDA, form L-12."

    first = await _run(
        clients, gw_settings, ModelCallRequest(call=_call(question), context=context, config=config)
    )
    assert first.ok and first.cache_layer == "none"
    assert len(harness.requests) == 1

    exact = await _run(
        clients, gw_settings, ModelCallRequest(call=_call(question), context=context, config=config)
    )
    assert exact.ok and exact.cache_layer == "exact"
    assert exact.text == first.text
    assert len(harness.requests) == 1  # no provider call

    semantic = await _run(
        clients,
        gw_settings,
        ModelCallRequest(call=_call(paraphrase), context=context, config=config),
    )
    assert semantic.ok and semantic.cache_layer == "semantic"
    assert len(harness.requests) == 1

    near_miss = await _run(
        clients,
        gw_settings,
        ModelCallRequest(
            call=_call("Which NDA has to be signed after a client meeting?"),
            context=context,
            config=config,
        ),
    )
    assert near_miss.cache_layer == "none"  # similar words, different question
    assert len(harness.requests) == 2

    other_id = await ensure_tenant(clients.engine, f"t-{uuid.uuid4().hex[:12]}")
    other = CallContext(tenant=f"other-{context.tenant}", tenant_id=str(other_id), feature="test")
    harness.reply_text = "Tenant B's own answer."
    theirs = await _run(
        clients, gw_settings, ModelCallRequest(call=_call(question), context=other, config=config)
    )
    assert theirs.cache_layer == "none"
    assert theirs.text == "Tenant B's own answer."

    wid = f"cache-ledger-{uuid.uuid4()}"
    await _run(
        clients,
        gw_settings,
        ModelCallRequest(call=_call(question), context=context, config=config),
        wid,
    )
    assert [(r["provider"], r["cache_layer"]) for r in await _ledger(clients, wid)] == [
        ("cache", "exact")
    ]


async def test_cache_bypass_and_time_sensitive_requests_reach_the_provider(
    clients: Clients,
    gw_settings: Settings,
    gw_workers: list[Worker],
    harness: ProviderHarness,
    context: CallContext,
) -> None:
    config = _config(gw_settings)
    for call in [_call(), _call(cache=False), _call(time_sensitive=True)]:
        result = await _run(
            clients, gw_settings, ModelCallRequest(call=call, context=context, config=config)
        )
        assert result.cache_layer == "none"
    assert len(harness.requests) == 3


async def test_provider_prompt_cache_tokens_are_priced_at_the_cache_rate(
    clients: Clients,
    gw_settings: Settings,
    gw_workers: list[Worker],
    harness: ProviderHarness,
    context: CallContext,
) -> None:
    harness.input_tokens = 100
    harness.cached_tokens = 1000
    harness.output_tokens = 10
    call = _call(system="You are Keel's policy assistant. " * 50, cache=False)
    wid = f"prompt-cache-{uuid.uuid4()}"
    result = await _run(
        clients,
        gw_settings,
        ModelCallRequest(call=call, context=context, config=_config(gw_settings)),
        wid,
    )
    assert result.cache_layer == "provider"
    assert result.usage.cached_input_tokens == 1000
    price = gw_settings.prices["claude-haiku-4-5"]
    expected = (100 * price.input + 1000 * price.cached_input + 10 * price.output) / 1_000_000
    assert result.cost_usd == pytest.approx(expected)
    body = harness.requests_for("anthropic")[0].body
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
    (row,) = await _ledger(clients, wid)
    assert row["cache_layer"] == "provider"


async def test_pii_is_redacted_before_the_provider_and_only_the_users_own_restored(
    clients: Clients,
    gw_settings: Settings,
    gw_workers: list[Worker],
    harness: ProviderHarness,
    context: CallContext,
) -> None:
    # Placeholders are numbered in order of appearance: the system prompt comes first.
    harness.reply_text = "Writing to [EMAIL_2], not [EMAIL_1]; card [CARD_1]."
    redacting = context.model_copy(update={"redact_pii": True})
    call = _call(
        "Email me at dana.lee@example.com about card 4111 1111 1111 1111 please",
        system="Staff directory: ops lead is sam.ortiz@example.org",
        cache=False,
    )
    result = await _run(
        clients,
        gw_settings,
        ModelCallRequest(call=call, context=redacting, config=_config(gw_settings)),
    )
    sent = harness.requests_for("anthropic")[0].body
    sent_text = str(sent)
    assert "dana.lee@example.com" not in sent_text
    assert "4111 1111 1111 1111" not in sent_text
    assert "sam.ortiz@example.org" not in sent_text  # system-prompt PII is not the user's
    assert "[EMAIL_" in sent_text and "[CARD_" in sent_text
    assert result.ok
    # The user's own values come back; the staff address stays a placeholder.
    assert (
        result.text == "Writing to dana.lee@example.com, not [EMAIL_1]; card 4111 1111 1111 1111."
    )
