"""Contracts of the model-call path (the gateway): what a workflow asks, what it gets back.

A workflow calls `workflows.llm.call_model(...)`, which walks: exact cache, semantic cache,
routing, tenant and run budgets, circuit breaker, provider attempt (with Temporal retries),
fallback down the chain, cache write. Every model here travels through workflow history, so
fields are only ever added, with defaults.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from keel.contracts.guards import (
    CircuitConfig,
    CircuitState,
    ModelPrice,
    RouteDecision,
    RoutingConfig,
    RunBudget,
    TenantBudgetStatus,
    Transition,
)
from keel.contracts.llm import ChatMessage, LlmRequest, Usage

CacheLayer = Literal["none", "exact", "semantic", "provider", "stale"]


class GatewayConfig(BaseModel):
    """Gateway knobs, resolved from settings when a run starts and fixed for its lifetime.

    Passing them in the run's input (not reading settings in workflow code) keeps replays
    deterministic even after the settings change.
    """

    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    prices: dict[str, ModelPrice] = Field(default_factory=dict)
    circuit: CircuitConfig = Field(default_factory=CircuitConfig)
    semantic_threshold: float = Field(default=0.95, ge=0.0, le=1.0)
    semantic_cache: bool = True
    exact_cache: bool = True
    exact_ttl_seconds: int = Field(default=86_400, gt=0)
    gpu_queue: str = "keel-gpu"
    cpu_queue: str = ""  # empty: the workflow's own task queue
    circuit_scope: str = Field(
        default="", description="Prefix of breaker ids: separate deployments/regions/tests."
    )
    providers: list[str] = Field(
        default_factory=lambda: ["local"], description="Providers configured with a key."
    )


class CallContext(BaseModel):
    """Who is calling and for what: goes into every ledger row and cache key."""

    tenant: str
    tenant_id: str
    feature: str
    api_key_id: str = ""
    run_budget: RunBudget = Field(default_factory=RunBudget)
    redact_pii: bool = Field(
        default=False,
        description="Replace PII with placeholders before text reaches a provider (tenant "
        "setting `redact_pii`); only the user's own values are restored in the answer.",
    )


class ModelCall(BaseModel):
    """One request to the gateway. `model` empty means: route by complexity."""

    system: str = ""
    messages: list[ChatMessage] = Field(min_length=1)
    model: str = ""
    tier: Literal["cheap", "medium", "expensive"] | None = None
    max_tokens: int = Field(default=1024, gt=0)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    cache: bool = Field(default=True, description="False bypasses both caches for this call.")
    time_sensitive: bool = Field(
        default=False, description="Answers that go stale (news, 'today'): never cached."
    )
    context_tokens: int = Field(default=0, ge=0, description="Retrieved context size, for routing.")
    cited_document_ids: list[str] = Field(
        default_factory=list,
        description="Documents the prompt was built from: a change to any invalidates the cache.",
    )
    stream_events: bool = Field(
        default=False,
        description="Stream the answer's pieces as run events while it is generated.",
    )
    json_schema: dict[str, Any] | None = Field(
        default=None,
        description="JSON schema the reply must follow; providers that can constrain their "
        "output (the local llama.cpp model) do, the others ignore it.",
    )


class CacheProbe(BaseModel):
    """Input of the cache lookup activities."""

    context: CallContext
    key: str
    model_scope: str
    system: str = ""
    query_text: str = ""
    threshold: float = 0.95
    workflow_id: str = ""
    run_id: str = ""


class CacheHit(BaseModel):
    """A cached answer; `similarity` is 1.0 for exact hits."""

    layer: CacheLayer
    text: str
    model: str
    similarity: float = 1.0
    cached_key: str = ""
    entry: str = Field(default="", description="Id the entry was stored under (its version).")


class CacheWrite(BaseModel):
    context: CallContext
    key: str
    model_scope: str
    system: str = ""
    query_text: str
    text: str
    model: str
    ttl_seconds: int
    cited_document_ids: list[str] = Field(default_factory=list)
    semantic: bool = True


class VectorProbe(BaseModel):
    """A semantic-cache lookup whose question is already embedded (by the query's own
    embedding call), so the lookup needs no model and runs next to the workflow."""

    probe: CacheProbe
    vector_b64: str


class VectorWrite(BaseModel):
    """A semantic-cache write under a vector computed earlier in the run."""

    write: CacheWrite
    vector_b64: str


class ProviderCall(BaseModel):
    """Input of the provider attempt activity."""

    context: CallContext
    request: LlmRequest
    provider: str
    workflow_id: str = ""
    run_id: str = ""
    circuit_id: str = ""
    circuit: CircuitConfig = Field(default_factory=CircuitConfig)
    stream_events: bool = False


class ProviderResult(BaseModel):
    text: str
    model: str
    provider: str
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    cache_layer: CacheLayer = "none"


class AttemptRecord(BaseModel):
    """One step down the fallback chain, as the workflow saw it."""

    model: str
    provider: str
    outcome: Literal["ok", "failed", "circuit_open", "not_configured", "budget"]
    error_type: str = ""
    message: str = ""


class CircuitAdmission(BaseModel):
    allowed: bool
    state: CircuitState
    transition: Transition | None = None


class CircuitOutcome(BaseModel):
    success: bool
    at_attempt_started: str = ""  # ISO time the attempt was admitted (late-report guard)


class TenantSpend(BaseModel):
    spent_usd: float
    limit_usd: float | None = None
    soft_ratio: float = 0.7


StopReason = Literal["budget_exhausted", "tenant_budget_exhausted", "all_providers_failed"]


class ModelCallResult(BaseModel):
    """What `call_model` returns: an answer, or a typed reason why there is none."""

    ok: bool
    text: str = ""
    model: str = ""
    provider: str = ""
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    cache_layer: CacheLayer = "none"
    route: RouteDecision | None = None
    attempts: list[AttemptRecord] = Field(default_factory=list)
    stop_reason: StopReason | None = None
    detail: str = ""
    tenant_budget: TenantBudgetStatus | None = None


class ModelCallRequest(BaseModel):
    """Input of `ModelCallWorkflow`."""

    call: ModelCall
    context: CallContext
    config: GatewayConfig = Field(default_factory=GatewayConfig)
