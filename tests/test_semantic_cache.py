"""Semantic cache quality on the labelled pair set, and the key-term guard's rules."""

from __future__ import annotations

import pytest

from activities.semantic_cache import key_terms, same_meaning_guard
from tests.bench.gateway import wrong_hit_rates


def test_wrong_hit_rate_on_labelled_pairs_beats_cosine_alone() -> None:
    rates = wrong_hit_rates(0.95)
    guarded_wrong = rates["with key-term guard: near-miss questions wrongly served %"]
    cosine_wrong = rates["cosine only: near-miss questions wrongly served %"]
    # Measured 0.8 % (guard) vs 20.8 % (cosine only) on the first run; GPTCache reports 5-9 %.
    assert guarded_wrong <= 2.0
    assert cosine_wrong > 10 * guarded_wrong
    # The guard costs few paraphrase hits at this threshold (15.5 % by cosine alone; 14.5 %
    # with the guard since rare words count, 15.5 % before).
    assert rates["with key-term guard: paraphrases served from cache %"] >= 14.0
    assert rates["with key-term guard: wrong answers among hits %"] <= 7.0


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What was the leave policy in 2023?", "What was the leave policy in 2025?"),
        ("How do I reset my password?", "How do I reset my colleague's password?"),
        ("Which licences are transferable?", "Which licences are non-transferable?"),
        (
            "How do I migrate data from Postgres to BigQuery?",
            "How do I migrate data from BigQuery to Postgres?",
        ),
        (
            "What is the refund window for annual plans?",
            "What is the refund window for monthly plans?",
        ),
        ("Can contractors use the VPN?", "Can interns use the VPN?"),
        # Codes and names written in lowercase: words outside the model's vocabulary.
        (
            "How many vacation days do new employees get? Reference abcdefab.",
            "How many vacation days do new employees get? Reference cdcdcdcd.",
        ),
        ("What does the zorvex plan include?", "What does the quintrel plan include?"),
        # Codes whose digits agree: compared whole.
        ("Summarise ticket a1b2c3d4, please.", "Summarise ticket e1f2a3b4, please."),
    ],
)
def test_near_misses_are_told_apart(a: str, b: str) -> None:
    assert not same_meaning_guard(a, b), (key_terms(a), key_terms(b))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (
            "Which NDA has to be signed before a client meeting?",
            "Before a client meeting, which NDA has to be signed?",
        ),
        ("What's the min password length?", "What is the minimum required length for passwords?"),
        ("Could you tell me when payroll is run each month?", "when does payroll run every month?"),
        (
            "The SSO login keeps failing. Who can help?",
            "Who can help when SSO login keeps failing?",
        ),
    ],
)
def test_paraphrases_keep_the_same_key_terms(a: str, b: str) -> None:
    assert same_meaning_guard(a, b), (key_terms(a), key_terms(b))
