"""Contracts of the deterministic guards in `keel/guards/`: routing, cost, budget, circuit.

Workflow code decides every guard from these models, so they travel through workflow history
(and through the circuit-breaker entity's state): fields are only ever added, with defaults.
Datetimes are timezone-aware because `workflow.now()` is, and mixing naive and aware values
would fail at the first comparison instead of at the boundary.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

# --- routing -----------------------------------------------------------------------------------

Tier = Literal["cheap", "medium", "expensive"]
QuestionType = Literal["factoid", "procedural", "reasoning"]


class ComplexityScore(BaseModel):
    """How demanding a request looks, from surface features only (no model call)."""

    model_config = ConfigDict(frozen=True)

    score: float = Field(ge=0.0, le=1.0)
    features: dict[str, float] = Field(
        description="Each feature's contribution to `score`, in a fixed order; zeros included."
    )
    question_type: QuestionType
    estimated_tokens: int = Field(ge=0, description="Tokens of the request text (chars/4).")
    context_tokens: int = Field(default=0, ge=0, description="Context the answer must read.")


def _default_cheap() -> list[str]:
    return ["claude-haiku-4-5", "gpt-4o-mini", "local-extractive"]


def _default_medium() -> list[str]:
    return ["claude-sonnet-4-5", "gpt-4o", "claude-haiku-4-5", "local-extractive"]


def _default_expensive() -> list[str]:
    return ["claude-opus-4-1", "claude-sonnet-4-5", "gpt-4o", "local-extractive"]


class RoutingConfig(BaseModel):
    """Score thresholds and each tier's ordered fallback chain (first model is tried first).

    A score below `medium_threshold` is cheap, below `expensive_threshold` medium, else expensive.
    The chains end in `local-extractive` so a run can always answer when every provider is down.
    """

    model_config = ConfigDict(frozen=True)

    medium_threshold: float = Field(default=0.2, ge=0.0, le=1.0)
    expensive_threshold: float = Field(default=0.45, ge=0.0, le=1.0)
    cheap: list[str] = Field(default_factory=_default_cheap, min_length=1)
    medium: list[str] = Field(default_factory=_default_medium, min_length=1)
    expensive: list[str] = Field(default_factory=_default_expensive, min_length=1)

    @model_validator(mode="after")
    def _check(self) -> RoutingConfig:
        if self.medium_threshold > self.expensive_threshold:
            raise ValueError("medium_threshold must not exceed expensive_threshold")
        for tier in ("cheap", "medium", "expensive"):
            chain: list[str] = getattr(self, tier)
            if len(set(chain)) != len(chain):
                raise ValueError(f"{tier} fallback chain lists a model twice: {chain}")
        return self

    def chain(self, tier: Tier) -> list[str]:
        """The ordered fallback chain of `tier`."""
        chains: dict[Tier, list[str]] = {
            "cheap": self.cheap,
            "medium": self.medium,
            "expensive": self.expensive,
        }
        return list(chains[tier])


class RouteDecision(BaseModel):
    """Which tier a request goes to and why; recorded in history so replays route identically."""

    model_config = ConfigDict(frozen=True)

    tier: Tier
    models: list[str] = Field(min_length=1, description="Fallback chain, first tried first.")
    score: float = Field(ge=0.0, le=1.0)
    features: dict[str, float]
    question_type: QuestionType

    @property
    def primary_model(self) -> str:
        """The model tried first."""
        return self.models[0]


# --- costing -----------------------------------------------------------------------------------


class ModelPrice(BaseModel):
    """USD per million tokens for one model."""

    model_config = ConfigDict(frozen=True)

    input: float = Field(ge=0.0)
    output: float = Field(ge=0.0)
    cached_input: float = Field(ge=0.0, description="Input tokens read from the prompt cache.")
    cache_write: float | None = Field(
        default=None,
        ge=0.0,
        description="Input tokens written to the prompt cache (Anthropic bills 1.25x input); "
        "None prices them at the input rate.",
    )


# --- budgets -----------------------------------------------------------------------------------

BudgetLimit = Literal["tokens", "usd"]
TenantBudgetLevel = Literal["ok", "soft_alert", "hard_stop"]


class RunBudget(BaseModel):
    """Caps of one run; `None` means that dimension is not capped."""

    model_config = ConfigDict(frozen=True)

    max_tokens: int | None = Field(default=None, ge=0)
    max_usd: float | None = Field(default=None, ge=0.0)


class BudgetState(BaseModel):
    """What a run has spent so far, from the actual usage of finished calls."""

    model_config = ConfigDict(frozen=True)

    spent_tokens: int = Field(default=0, ge=0)
    spent_usd: float = Field(default=0.0, ge=0.0)


class BudgetDecision(BaseModel):
    """Whether the next call may start; a stop names the cap(s) its estimate would break."""

    model_config = ConfigDict(frozen=True)

    allowed: bool
    reason: Literal["budget_exhausted"] | None = None
    exceeded: list[BudgetLimit] = Field(default_factory=list)
    detail: str = ""
    remaining_tokens: int | None = Field(
        default=None, description="Tokens left before this call; None when uncapped."
    )
    remaining_usd: float | None = Field(
        default=None, description="USD left before this call; None when uncapped."
    )


class TenantBudgetStatus(BaseModel):
    """Where a tenant stands against its monthly USD limit."""

    model_config = ConfigDict(frozen=True)

    level: TenantBudgetLevel
    percent: float = Field(ge=0.0, description="Spent as a percentage of the limit.")
    spent_usd: float
    limit_usd: float
    remaining_usd: float = Field(ge=0.0)


# --- circuit breaker ---------------------------------------------------------------------------

CircuitStateName = Literal["closed", "open", "half_open"]
TransitionReason = Literal[
    "failure_threshold_reached",
    "cooldown_elapsed",
    "probe_succeeded",
    "probe_failed",
    "probe_timed_out",
]


def _default_cooldown() -> timedelta:
    return timedelta(seconds=30)


def _default_probe_timeout() -> timedelta:
    # Longer than one provider attempt (120 s) so a slow but live probe is not replaced.
    return timedelta(minutes=5)


class CircuitConfig(BaseModel):
    """Tuning of one provider's circuit breaker."""

    model_config = ConfigDict(frozen=True)

    failure_threshold: int = Field(default=5, ge=1)
    cooldown: timedelta = Field(default_factory=_default_cooldown)
    probe_timeout: timedelta = Field(
        default_factory=_default_probe_timeout,
        description="After this long without an outcome the probe counts as lost and another "
        "request may probe, so a cancelled run cannot hold the circuit half-open forever.",
    )

    @model_validator(mode="after")
    def _non_negative(self) -> CircuitConfig:
        if self.cooldown < timedelta(0) or self.probe_timeout <= timedelta(0):
            raise ValueError("cooldown must be >= 0 and probe_timeout > 0")
        return self


class CircuitState(BaseModel):
    """One provider's breaker. Invalid combinations are rejected, so every state is reachable."""

    model_config = ConfigDict(frozen=True)

    state: CircuitStateName = "closed"
    consecutive_failures: int = Field(default=0, ge=0)
    opened_at: AwareDatetime | None = None
    half_open_in_flight: bool = False
    probe_admitted_at: AwareDatetime | None = Field(
        default=None, description="When the in-flight probe was admitted (half_open only)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> CircuitState:
        if (self.state == "closed") != (self.opened_at is None):
            raise ValueError("opened_at is set exactly when the circuit is open or half_open")
        if self.half_open_in_flight and self.state != "half_open":
            raise ValueError("only a half_open circuit has a probe in flight")
        if self.half_open_in_flight != (self.probe_admitted_at is not None):
            raise ValueError("probe_admitted_at is set exactly when a probe is in flight")
        return self


class Transition(BaseModel):
    """A change of circuit state, recorded so the breaker's history can be inspected."""

    model_config = ConfigDict(frozen=True)

    from_state: CircuitStateName
    to_state: CircuitStateName
    at: AwareDatetime
    reason: TransitionReason
