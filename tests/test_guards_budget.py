"""Per-run budget checks before calls, reconciliation after, and tenant monthly levels."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from keel.contracts.guards import BudgetDecision, BudgetState, ModelPrice, RunBudget
from keel.contracts.llm import Usage
from keel.guards.budget import check_before_call, reconcile, tenant_budget_status
from keel.guards.costing import cost_usd, estimate_cost, total_tokens

PRICES = {"claude-haiku-4-5": ModelPrice(input=1.0, output=5.0, cached_input=0.10)}


def test_call_within_both_caps_is_allowed() -> None:
    decision = check_before_call(
        BudgetState(spent_tokens=1_000, spent_usd=0.002),
        RunBudget(max_tokens=10_000, max_usd=0.05),
        estimated_tokens=2_000,
        estimated_usd=0.01,
    )
    assert decision.allowed
    assert decision.reason is None
    assert decision.exceeded == []
    assert decision.remaining_tokens == 9_000
    assert decision.remaining_usd == pytest.approx(0.048)


def test_a_one_cent_budget_stops_before_the_call_that_would_exceed_it() -> None:
    budget = RunBudget(max_usd=0.01)
    state = BudgetState()
    calls = 0
    # Each call: 2,000 prompt tokens, up to 500 output -> estimate $0.0045, actual $0.003.
    while True:
        estimate = estimate_cost("claude-haiku-4-5", 2_000, 500, PRICES)
        decision = check_before_call(state, budget, 2_500, estimate)
        if not decision.allowed:
            break
        calls += 1
        usage = Usage(input_tokens=2_000, output_tokens=200)
        state = reconcile(state, total_tokens(usage), cost_usd("claude-haiku-4-5", usage, PRICES))
    assert calls == 2  # after $0.006 spent, $0.006 + $0.0045 > $0.01: the third never starts
    assert state.spent_usd <= 0.01
    assert decision.reason == "budget_exhausted"
    assert decision.exceeded == ["usd"]
    assert "usd" in decision.detail


def test_token_cap_is_named() -> None:
    decision = check_before_call(
        BudgetState(spent_tokens=9_000), RunBudget(max_tokens=10_000), 1_001, 0.0
    )
    assert not decision.allowed
    assert decision.reason == "budget_exhausted"
    assert decision.exceeded == ["tokens"]
    assert "max_tokens 10000" in decision.detail


def test_both_caps_are_named_when_both_would_break() -> None:
    decision = check_before_call(
        BudgetState(spent_tokens=90, spent_usd=0.9), RunBudget(max_tokens=100, max_usd=1.0), 20, 0.2
    )
    assert decision.exceeded == ["tokens", "usd"]


def test_reaching_a_cap_exactly_is_allowed_even_through_float_sums() -> None:
    budget = RunBudget(max_tokens=100, max_usd=0.3)
    state = reconcile(
        reconcile(BudgetState(), 30, 0.1), 30, 0.1
    )  # 0.1 + 0.1 + 0.1 != 0.3 in floats
    assert check_before_call(state, budget, 40, 0.1).allowed
    assert not check_before_call(state, budget, 41, 0.1).allowed
    assert not check_before_call(state, budget, 40, 0.1001).allowed


def test_uncapped_dimensions_never_stop() -> None:
    decision = check_before_call(
        BudgetState(spent_tokens=10**9, spent_usd=1e6), RunBudget(), 10**9, 1e6
    )
    assert decision.allowed
    assert decision.remaining_tokens is None
    assert decision.remaining_usd is None


def test_overrun_by_an_actual_stops_every_later_call() -> None:
    budget = RunBudget(max_tokens=1_000)
    state = reconcile(BudgetState(), 1_200, 0.0)  # the call used more than its estimate
    decision = check_before_call(state, budget, 1, 0.0)
    assert not decision.allowed
    assert decision.remaining_tokens == 0


def test_zero_budget_refuses_any_paid_call() -> None:
    decision = check_before_call(BudgetState(), RunBudget(max_tokens=0, max_usd=0.0), 1, 0.0001)
    assert decision.exceeded == ["tokens", "usd"]


def test_reconcile_adds_actuals_and_leaves_the_old_state_alone() -> None:
    before = BudgetState(spent_tokens=10, spent_usd=0.5)
    after = reconcile(before, 5, 0.25)
    assert after == BudgetState(spent_tokens=15, spent_usd=0.75)
    assert before == BudgetState(spent_tokens=10, spent_usd=0.5)


@pytest.mark.parametrize(("tokens", "usd"), [(-1, 0.0), (0, -0.01)])
def test_negative_amounts_are_rejected(tokens: int, usd: float) -> None:
    with pytest.raises(ValueError, match=">= 0"):
        check_before_call(BudgetState(), RunBudget(), tokens, usd)
    with pytest.raises(ValueError, match=">= 0"):
        reconcile(BudgetState(), tokens, usd)


def test_budget_models_validate_and_round_trip() -> None:
    with pytest.raises(ValidationError):
        RunBudget(max_usd=-1.0)
    decision = check_before_call(BudgetState(), RunBudget(max_usd=0.01), 10, 0.02)
    assert BudgetDecision.model_validate_json(decision.model_dump_json()) == decision


@pytest.mark.parametrize(
    ("spent", "limit", "level", "percent"),
    [
        (0.0, 100.0, "ok", 0.0),
        (69.99, 100.0, "ok", 69.99),
        (70.0, 100.0, "soft_alert", 70.0),
        (0.07, 0.1, "soft_alert", 70.0),  # 0.07 / 0.1 is not exactly 0.7 in floats
        (99.99, 100.0, "soft_alert", 99.99),
        (100.0, 100.0, "hard_stop", 100.0),
        (150.0, 100.0, "hard_stop", 150.0),
        (0.0, 0.0, "hard_stop", 100.0),
    ],
)
def test_tenant_levels(spent: float, limit: float, level: str, percent: float) -> None:
    status = tenant_budget_status(spent, limit)
    assert status.level == level
    assert status.percent == pytest.approx(percent)
    assert status.remaining_usd == pytest.approx(max(limit - spent, 0.0))


def test_tenant_soft_ratio_is_configurable() -> None:
    assert tenant_budget_status(50.0, 100.0, soft_ratio=0.5).level == "soft_alert"
    assert tenant_budget_status(49.0, 100.0, soft_ratio=0.5).level == "ok"
    assert tenant_budget_status(99.0, 100.0, soft_ratio=1.0).level == "ok"


@pytest.mark.parametrize(
    ("spent", "limit", "ratio"),
    [(-1.0, 10.0, 0.7), (1.0, -10.0, 0.7), (1.0, 10.0, 0.0), (1.0, 10.0, 1.1)],
)
def test_tenant_status_rejects_bad_input(spent: float, limit: float, ratio: float) -> None:
    with pytest.raises(ValueError):
        tenant_budget_status(spent, limit, soft_ratio=ratio)
