"""Budgets: the per-run token/USD cap checked before each call, and the tenant's monthly level.

Workflow code calls `check_before_call` with the estimate of the next call and `reconcile` with
the usage the call's activity reported, so every stop is decided from values already in
history and replays identically.
"""

from __future__ import annotations

from keel.contracts.guards import (
    BudgetDecision,
    BudgetLimit,
    BudgetState,
    RunBudget,
    TenantBudgetLevel,
    TenantBudgetStatus,
)

# Sums of float dollars drift by ~1e-17 per addition; without slack a call that fits the cap
# exactly (0.1 + 0.2 against 0.3) would be refused. A nano-dollar is far below any price.
_USD_EPSILON = 1e-9


def check_before_call(
    state: BudgetState,
    budget: RunBudget,
    estimated_tokens: int,
    estimated_usd: float,
) -> BudgetDecision:
    """Decide whether the next call may start.

    A call is refused when spending its *estimate* would take the run past a cap, so a run
    stops before the call that would overspend rather than after it. Reaching a cap exactly
    is allowed.

    Args:
        state: What the run has spent so far.
        budget: The run's caps.
        estimated_tokens: Tokens of the call, estimated: prompt (`costing.estimate_tokens`)
            plus the output cap.
        estimated_usd: Upper-bound cost of the call, e.g. from `costing.estimate_cost`.

    Returns:
        `allowed=True`, or `allowed=False` with `reason="budget_exhausted"` and `exceeded`
        naming the cap(s) the estimate breaks: "tokens", "usd" or both.

    Raises:
        ValueError: An estimate is negative.
    """
    if estimated_tokens < 0 or estimated_usd < 0:
        raise ValueError("estimates must be >= 0")

    exceeded: list[BudgetLimit] = []
    details: list[str] = []
    remaining_tokens: int | None = None
    remaining_usd: float | None = None

    if budget.max_tokens is not None:
        remaining_tokens = max(budget.max_tokens - state.spent_tokens, 0)
        projected_tokens = state.spent_tokens + estimated_tokens
        if projected_tokens > budget.max_tokens:
            exceeded.append("tokens")
            details.append(
                f"tokens: {state.spent_tokens} spent + {estimated_tokens} estimated "
                f"= {projected_tokens} > max_tokens {budget.max_tokens}"
            )

    if budget.max_usd is not None:
        remaining_usd = max(budget.max_usd - state.spent_usd, 0.0)
        projected_usd = state.spent_usd + estimated_usd
        if projected_usd > budget.max_usd + _USD_EPSILON:
            exceeded.append("usd")
            details.append(
                f"usd: {state.spent_usd:.6f} spent + {estimated_usd:.6f} estimated "
                f"= {projected_usd:.6f} > max_usd {budget.max_usd:.6f}"
            )

    if exceeded:
        return BudgetDecision(
            allowed=False,
            reason="budget_exhausted",
            exceeded=exceeded,
            detail="; ".join(details),
            remaining_tokens=remaining_tokens,
            remaining_usd=remaining_usd,
        )
    return BudgetDecision(
        allowed=True, remaining_tokens=remaining_tokens, remaining_usd=remaining_usd
    )


def reconcile(state: BudgetState, actual_tokens: int, actual_usd: float) -> BudgetState:
    """Add a finished call's actual usage to the run's spend.

    Actuals, not estimates, are what is spent: the estimate only guards the start of a call.
    A call that overran its estimate can leave the spend above a cap; the next
    `check_before_call` then refuses everything.

    Args:
        state: Spend before the call.
        actual_tokens: Tokens the provider reported, e.g. `costing.total_tokens(usage)`.
        actual_usd: Cost of those tokens, e.g. from `costing.cost_usd`.

    Returns:
        A new state; `state` is not changed.

    Raises:
        ValueError: An actual is negative.
    """
    if actual_tokens < 0 or actual_usd < 0:
        raise ValueError("actual usage must be >= 0")
    return BudgetState(
        spent_tokens=state.spent_tokens + actual_tokens,
        spent_usd=state.spent_usd + actual_usd,
    )


def tenant_budget_status(
    spent_usd: float,
    limit_usd: float,
    soft_ratio: float = 0.7,
) -> TenantBudgetStatus:
    """Classify a tenant's month-to-date spend against its monthly limit.

    Args:
        spent_usd: Spend this month.
        limit_usd: Monthly limit; 0 means the tenant may not spend at all (`hard_stop`,
            reported as 100 %).
        soft_ratio: Fraction of the limit at which to alert (0 < soft_ratio <= 1).

    Returns:
        `hard_stop` at or above 100 % of the limit, `soft_alert` at or above `soft_ratio`,
        otherwise `ok`; with the percentage spent.

    Raises:
        ValueError: A negative amount or a `soft_ratio` outside (0, 1].
    """
    if spent_usd < 0 or limit_usd < 0:
        raise ValueError("spent_usd and limit_usd must be >= 0")
    if not 0 < soft_ratio <= 1:
        raise ValueError("soft_ratio must be in (0, 1]")

    # A zero limit means nothing may be spent: report exactly 100 % rather than divide by zero.
    ratio = 1.0 if limit_usd == 0 else spent_usd / limit_usd

    # Compare with a little slack so 70 % reached through float sums (0.07 / 0.1) still alerts.
    if ratio >= 1.0 - _USD_EPSILON:
        level: TenantBudgetLevel = "hard_stop"
    elif ratio >= soft_ratio - _USD_EPSILON:
        level = "soft_alert"
    else:
        level = "ok"

    return TenantBudgetStatus(
        level=level,
        percent=ratio * 100,
        spent_usd=spent_usd,
        limit_usd=limit_usd,
        remaining_usd=max(limit_usd - spent_usd, 0.0),
    )
