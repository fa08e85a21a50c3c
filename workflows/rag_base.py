"""The state and helpers every part of `RagQueryWorkflow` shares (see `workflows.rag`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from keel.contracts.gateway import (
        CacheHit,
        GatewayConfig,
        ModelCall,
        ModelCallResult,
    )
    from keel.contracts.guards import BudgetState
    from keel.contracts.llm import Usage
    from keel.contracts.rag import (
        RagAnswer,
        RagQueryRequest,
    )
    from workflows.llm import call_model
    from workflows.policies import LOCAL_TIMEOUT, QUICK_RETRY

M = TypeVar("M", bound=BaseModel)
A = TypeVar("A")


def _ms(delta: timedelta) -> float:
    return round(delta.total_seconds() * 1000, 3)


class RagRunBase:
    """One RAG run's state: the stage, its timings and notes, and what its calls spent."""

    _stage: str
    _timings: dict[str, float]
    _notes: list[str]
    _budget: BudgetState
    _usage: Usage
    _carry_budget: bool
    _one_embedding: bool
    _question_vector: str

    async def _call(
        self, call: ModelCall, request: RagQueryRequest, gateway: GatewayConfig
    ) -> ModelCallResult:
        """One model call of this run, against what the run has spent so far."""
        budget = self._budget if self._carry_budget else BudgetState()
        result, after = await call_model(call, request.context, gateway, budget)
        if self._carry_budget:
            self._budget = after
            self._usage = _add(self._usage, result.usage)
        return result

    async def _local(self, method: Callable[[Any, A], Awaitable[M | None]], arg: A) -> M:
        result = await self._local_optional(method, arg)
        if result is None:
            raise RuntimeError(f"local activity {method.__name__} returned nothing")
        return result

    async def _local_optional(
        self, method: Callable[[Any, A], Awaitable[M | None]], arg: A
    ) -> M | None:
        result: M | None = await workflow.execute_local_activity_method(
            method,
            arg,
            start_to_close_timeout=LOCAL_TIMEOUT,
            retry_policy=QUICK_RETRY,
        )
        return result


def _from_cache(hit: CacheHit | None, layer: str) -> RagAnswer | None:
    if hit is None:
        return None
    cached = RagAnswer.model_validate_json(hit.text)
    return cached.model_copy(
        update={"cache_layer": layer, "usage": Usage(), "cost_usd": 0.0, "timings_ms": {}}
    )


def _cause(exc: FailureError) -> str:
    cause: BaseException = exc.cause or exc
    kind = getattr(cause, "type", None) if isinstance(cause, ApplicationError) else None
    return f"{kind or type(cause).__name__}: {cause}"[:200]


def _add(a: Usage, b: Usage) -> Usage:
    return Usage(
        input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        cached_input_tokens=a.cached_input_tokens + b.cached_input_tokens,
        cache_write_tokens=a.cache_write_tokens + b.cache_write_tokens,
    )
