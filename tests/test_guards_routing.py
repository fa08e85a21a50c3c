"""Complexity scoring and tier routing: clear examples per tier, determinism, configuration."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from keel.contracts.guards import ComplexityScore, RouteDecision, RoutingConfig
from keel.guards.routing import FEATURE_WEIGHTS, route, score_complexity

CONFIG = RoutingConfig()

CHEAP = [
    "Who is the head of HR?",
    "When was the expense policy last updated?",
    "How many vacation days do new employees get?",
    "What is the setup fee for the enterprise plan?",
    "How do I reset my password?",
]
MEDIUM = [
    "Why did support tickets rise in March?",
    "Compare the 2023 and 2025 leave policies.",
    "What are the pros and cons of moving payroll to the new vendor?",
    "Write a Python function that parses ISO dates.",
]
EXPENSIVE = [
    (
        "Compare the 2023 and 2025 leave policies step by step, and then write a Python "
        "function that computes accrual:\n```python\ndef accrue(days): ...\n```",
        0,
    ),
    ("Analyse this contract and explain every termination clause.", 32_000),
    (
        "Evaluate our pricing options:\n1. flat fee\n2. per seat\n3. usage based\n"
        "For each, calculate revenue if price = 12 * seats, and explain the trade-offs.",
        0,
    ),
]


@pytest.mark.parametrize("text", CHEAP)
def test_factoid_and_simple_how_to_go_cheap(text: str) -> None:
    decision = route(score_complexity(text), CONFIG)
    assert decision.tier == "cheap", decision
    assert decision.models == ["claude-haiku-4-5", "gpt-4o-mini", "local-extractive"]


@pytest.mark.parametrize("text", MEDIUM)
def test_reasoning_questions_go_medium(text: str) -> None:
    decision = route(score_complexity(text, context_tokens=2_500), CONFIG)
    assert decision.tier == "medium", decision
    assert decision.question_type == "reasoning"


@pytest.mark.parametrize(("text", "context_tokens"), EXPENSIVE)
def test_multi_step_code_maths_or_huge_context_go_expensive(text: str, context_tokens: int) -> None:
    decision = route(score_complexity(text, context_tokens=context_tokens), CONFIG)
    assert decision.tier == "expensive", decision
    assert decision.primary_model == "claude-opus-4-1"


def test_question_types() -> None:
    assert score_complexity("When does open enrolment close?").question_type == "factoid"
    assert score_complexity("How much does the premium plan cost?").question_type == "factoid"
    assert score_complexity("How do I request a new laptop?").question_type == "procedural"
    assert score_complexity("Why was the travel budget cut?").question_type == "reasoning"
    assert score_complexity("What is the difference between the two plans?").question_type == (
        "reasoning"
    )


def test_features_explain_the_score() -> None:
    score = score_complexity(
        "First, list the open incidents. Then explain why each one happened? Which team owns it?"
        "\n```sql\nSELECT * FROM incidents;\n```",
        context_tokens=8_000,
    )
    assert list(score.features) == list(FEATURE_WEIGHTS)
    assert score.score == pytest.approx(sum(score.features.values()), abs=1e-4)
    assert score.features["question_type"] == FEATURE_WEIGHTS["question_type"]
    assert score.features["code"] == FEATURE_WEIGHTS["code"]  # a code block saturates it
    assert score.features["multi_step"] > 0
    assert score.features["context"] == pytest.approx(0.2 * 8_000 / 32_000)
    assert score.features["maths"] == 0


def test_multi_step_markers_each_count() -> None:
    one = score_complexity("What is the refund window?")
    two_questions = score_complexity("What is the refund window? Who approves refunds?")
    listed = score_complexity("Tell me:\n- the refund window\n- who approves refunds")
    assert one.features["multi_step"] == 0
    assert two_questions.features["multi_step"] > 0
    assert listed.features["multi_step"] > 0
    saturated = score_complexity("Do A, then B, after that C, and then D step by step. Finally E.")
    assert saturated.features["multi_step"] == FEATURE_WEIGHTS["multi_step"]


def test_length_and_context_saturate() -> None:
    score = score_complexity("word " * 2_000, context_tokens=10**6)
    assert score.features["length"] == FEATURE_WEIGHTS["length"]
    assert score.features["context"] == FEATURE_WEIGHTS["context"]
    assert score.estimated_tokens == 2_500
    assert 0.0 <= score.score <= 1.0


def test_everything_at_once_stays_within_one() -> None:
    text = (
        "Step by step: 1. explain why x = 3 * y + 2\n2. compare it with the integral\n"
        "3. then write a function\n```python\ndef f(): return 1\n```? And then? Finally?"
    ) * 50
    score = score_complexity(text, context_tokens=100_000)
    assert score.score == pytest.approx(1.0)
    assert route(score, CONFIG).tier == "expensive"


def test_scoring_is_deterministic_and_serialisable() -> None:
    text = "Why did churn rise after the 2024 price change, and then what should we do?"
    first = score_complexity(text, context_tokens=1_234)
    assert first == score_complexity(text, context_tokens=1_234)
    decision = route(first, CONFIG)
    assert RouteDecision.model_validate_json(decision.model_dump_json()) == decision
    assert ComplexityScore.model_validate_json(first.model_dump_json()) == first


def test_empty_text_is_cheap() -> None:
    score = score_complexity("")
    assert score.score == 0.0
    assert route(score, CONFIG).tier == "cheap"


def test_negative_context_is_rejected() -> None:
    with pytest.raises(ValueError, match="context_tokens"):
        score_complexity("hi", context_tokens=-1)


def _score(value: float) -> ComplexityScore:
    return ComplexityScore(score=value, features={}, question_type="factoid", estimated_tokens=0)


def test_thresholds_are_configurable_and_inclusive_upwards() -> None:
    cfg = RoutingConfig(
        medium_threshold=0.3,
        expensive_threshold=0.6,
        cheap=["local-extractive"],
        medium=["gpt-4o-mini", "local-extractive"],
        expensive=["gpt-4o"],
    )
    assert route(_score(0.2999), cfg).tier == "cheap"
    assert route(_score(0.3), cfg).tier == "medium"
    assert route(_score(0.5999), cfg).tier == "medium"
    assert route(_score(0.6), cfg).tier == "expensive"
    assert route(_score(0.3), cfg).models == ["gpt-4o-mini", "local-extractive"]
    assert route(_score(0.9), cfg).models == ["gpt-4o"]


def test_decision_does_not_share_the_configs_list() -> None:
    decision = route(_score(0.0), CONFIG)
    decision.models.append("mutated")
    assert "mutated" not in CONFIG.cheap


@pytest.mark.parametrize(
    "kwargs",
    [
        {"medium_threshold": 0.7, "expensive_threshold": 0.5},
        {"cheap": []},
        {"medium": ["gpt-4o", "gpt-4o"]},
        {"expensive_threshold": 1.5},
    ],
)
def test_invalid_configs_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        RoutingConfig.model_validate(kwargs)


def test_maths_and_code_signals() -> None:
    maths = score_complexity("Solve for x: 3x + 2 = 11")
    assert maths.features["maths"] == FEATURE_WEIGHTS["maths"]
    assert maths.features["code"] == 0
    sql = score_complexity("Why is `SELECT * FROM orders` slow?")
    assert sql.features["code"] == FEATURE_WEIGHTS["code"]
    assert sql.features["maths"] == 0  # `*` between words is not multiplication
    prose = score_complexity("Who leads the 2024-2025 security review?")
    assert prose.features["maths"] == 0
    assert prose.features["code"] == 0
