"""The threshold frontier (`keel/redteam/frontier.py`): its knobs, at the settings that ship,
give `check_input`'s own verdicts, and away from them move only what they say they move."""

from __future__ import annotations

from dataclasses import replace

import pytest

from keel.redteam.frontier import (
    AGREE_BENIGN,
    SECOND_VETOES,
    TFIDF_CUTS,
    Scored,
    agree_benign,
    loosest_together,
    score,
    second_veto,
    tally,
    tfidf_tally,
)
from keel.redteam.runner import load_cases
from keel.safety.semantic import VETO


@pytest.fixture(scope="module")
def scored() -> list[tuple[str, Scored]]:
    cases = [c for c in load_cases() if c.channel == "user"]
    # Every tenth user-channel case of the suite: attacks and look-alikes of every category.
    picked = cases[::10]
    return [(c.text, score(c.text, c.category, c.expected == "block")) for c in picked]


def test_the_shipped_settings_reproduce_check_input(scored: list[tuple[str, Scored]]) -> None:
    from keel.safety import check_input

    rows = [row for _, row in scored]
    shipped = tally(rows, lambda r: r.blocked)
    assert sum(shipped.values()) > 10, "the sample holds refusals to move"
    assert all(row.blocked == check_input(text).blocked for text, row in scored)
    assert SECOND_VETOES[0] == VETO and AGREE_BENIGN[0] == 0.0 and TFIDF_CUTS[0] == 0.8
    assert tally(rows, lambda r: second_veto(r, VETO)) == shipped
    assert tally(rows, lambda r: agree_benign(r, 0.0)) == shipped
    assert tfidf_tally(scored, TFIDF_CUTS[0]) == shipped


def test_knobs_only_ever_lift_refusals(scored: list[tuple[str, Scored]]) -> None:
    rows = [row for _, row in scored]
    for row in rows:
        for v in SECOND_VETOES:
            assert second_veto(row, v) <= row.blocked
        for s in AGREE_BENIGN:
            assert agree_benign(row, s) <= row.blocked
    shipped = tally(rows, lambda r: r.blocked)
    for loosened in (tfidf_tally(scored, TFIDF_CUTS[-1]), loosest_together(scored)):
        assert all(loosened[g] <= n for g, n in shipped.items())


def _row(**fields: object) -> Scored:
    """A refused text, with the fields a test sets."""
    base: dict[str, object] = {
        "group": "g",
        "attack": False,
        "blocked": True,
        "rules_blocked": False,
        "rule_layers": frozenset(),
        "decoded": False,
        "tfidf": 0.0,
        "first": 0.99,
        "second": 0.3,
        "first_refused": True,
    }
    return Scored(**{**base, **fields})  # type: ignore[arg-type]


def test_second_veto_lifts_the_first_classifiers_refusals_only() -> None:
    alone = _row()
    assert second_veto(alone, 0.05) and not second_veto(alone, 0.4)
    # A refusal the rules also make, or the second classifier's own abuse refusal, stays.
    ruled = replace(alone, rules_blocked=True, rule_layers=frozenset({"injection"}))
    assert second_veto(ruled, 0.9)
    assert second_veto(replace(alone, first_refused=False), 0.9)


def test_agree_benign_never_lifts_a_decoded_payload_or_a_harmful_request() -> None:
    rule = _row(
        attack=True,
        rules_blocked=True,
        rule_layers=frozenset({"injection"}),
        tfidf=0.02,
        first=0.01,
        second=0.01,
        first_refused=False,
    )
    assert not agree_benign(rule, 0.05)
    assert agree_benign(replace(rule, decoded=True), 0.05)
    assert agree_benign(replace(rule, rule_layers=frozenset({"injection", "moderation"})), 0.05)
    assert agree_benign(replace(rule, tfidf=0.5), 0.05)
    assert agree_benign(replace(rule, first=0.3), 0.05)
