"""Starting runs: what every run's input carries besides its own request."""

from __future__ import annotations

from keel.auth import Principal
from keel.contracts.gateway import CallContext, GatewayConfig
from keel.contracts.guards import ModelPrice, RoutingConfig, RunBudget
from keel.settings import Settings


def configured_providers(settings: Settings) -> list[str]:
    """Providers that can answer: `local` always, the others when their key is set."""
    providers = ["local"]
    if settings.anthropic_api_key.get_secret_value():
        providers.append("anthropic")
    if settings.openai_api_key.get_secret_value():
        providers.append("openai")
    if settings.local_llm.enabled:
        providers.append("llamacpp")
    return providers


def with_local_model(routing: RoutingConfig, model: str) -> RoutingConfig:
    """Every chain with the local generative model just before `local-extractive` (or last):
    hosted models first when they have keys, the local model next, and the extractive answerer
    still last, for when the local server is down."""

    def insert(chain: list[str]) -> list[str]:
        if model in chain:
            return chain
        at = chain.index("local-extractive") if "local-extractive" in chain else len(chain)
        return [*chain[:at], model, *chain[at:]]

    chains = {"cheap": routing.cheap, "medium": routing.medium, "expensive": routing.expensive}
    return routing.model_copy(update={tier: insert(chain) for tier, chain in chains.items()})


def gateway_config(settings: Settings) -> GatewayConfig:
    """Gateway settings frozen into a run's input, so its replays never see later changes."""
    routing, prices = settings.routing, settings.prices
    local = settings.local_llm
    if local.enabled:
        routing = with_local_model(routing, local.model)
        prices = {local.model: ModelPrice(input=0.0, output=0.0, cached_input=0.0), **prices}
    return GatewayConfig(
        routing=routing,
        prices=prices,
        circuit=settings.circuit,
        semantic_threshold=settings.semantic_cache_threshold,
        semantic_cache=settings.semantic_cache,
        exact_cache=settings.exact_cache,
        exact_ttl_seconds=settings.exact_cache_ttl_seconds,
        gpu_queue=settings.task_queue_gpu,
        cpu_queue=settings.task_queue_cpu,
        providers=configured_providers(settings),
        circuit_scope=settings.circuit_scope,
    )


def call_context(
    principal: Principal, feature: str, budget: RunBudget | None = None
) -> CallContext:
    return CallContext(
        tenant=principal.tenant,
        tenant_id=str(principal.tenant_id),
        feature=feature,
        api_key_id=str(principal.key_id),
        run_budget=budget or RunBudget(),
        redact_pii=bool(principal.tenant_settings.get("redact_pii", False)),
    )


def ui_url(settings: Settings, workflow_id: str, run_id: str = "") -> str:
    """The run in the Temporal UI (its latest execution when `run_id` is empty)."""
    base = (
        f"{settings.temporal_ui}/namespaces/{settings.temporal_namespace}/workflows/{workflow_id}"
    )
    return f"{base}/{run_id}/history" if run_id else base
