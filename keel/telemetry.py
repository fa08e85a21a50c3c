"""Logs and metrics. Never imported by workflow code (it holds process-wide state).

Logs are structlog JSON lines. Inside an activity, `activity_context()` binds the workflow id,
run id, activity name and tenant, so every line an activity writes can be traced to its run
in the Temporal UI. Metrics are Prometheus counters and histograms served at `/metrics`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from prometheus_client import Counter, Gauge, Histogram
from temporalio import activity

_configured = False


def configure_logging(*, level: str = "INFO", json: bool = True) -> None:
    """Route stdlib and structlog logs to stderr, as JSON lines by default. Idempotent."""
    global _configured
    if _configured:
        return
    _configured = True
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def get_logger(name: str) -> Any:
    """A structlog logger; context bound with `bind_context` appears on every line."""
    return structlog.get_logger(name)


@contextmanager
def bound(**values: Any) -> Iterator[None]:
    """Bind key/values to every log line written inside the block."""
    with structlog.contextvars.bound_contextvars(**values):
        yield


@contextmanager
def activity_context(tenant: str | None = None) -> Iterator[None]:
    """Bind the current activity's workflow id, run id, activity name and tenant to logs."""
    info = activity.info()
    values: dict[str, Any] = {
        "workflow_id": info.workflow_id,
        "run_id": info.workflow_run_id,
        "activity": info.activity_type,
        "attempt": info.attempt,
    }
    if tenant is not None:
        values["tenant"] = tenant
    with bound(**values):
        yield


# -- metrics ---------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "keel_http_requests_total", "HTTP requests served", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram("keel_http_request_seconds", "HTTP request latency", ["method", "route"])
ACTIVITY_RUNS = Counter(
    "keel_activity_runs_total", "Activity executions by outcome", ["activity", "outcome"]
)
LLM_CALLS = Counter(
    "keel_llm_calls_total",
    "Model calls by provider, model and cache layer",
    ["provider", "model", "cache_layer", "status"],
)
LLM_COST = Counter("keel_llm_cost_usd_total", "Model spend in USD", ["tenant", "feature", "model"])
CACHE_LOOKUPS = Counter(
    "keel_cache_lookups_total", "Cache lookups by layer and result", ["layer", "result"]
)
CIRCUIT_STATE = Gauge(
    "keel_circuit_state", "A model's breaker: 0 closed, 1 half-open, 2 open", ["circuit"]
)
TENANT_BUDGET_USED = Gauge(
    "keel_tenant_budget_used_ratio",
    "This month's spend over the tenant's monthly limit (tenants with a limit)",
    ["tenant_id"],
)
SAFETY_VERDICTS = Counter(
    "keel_safety_verdicts_total", "Safety verdicts by layer and action", ["layer", "action"]
)
