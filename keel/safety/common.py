"""Helpers every safety layer shares: weighted rules, noisy-or scores, combining verdicts."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from keel.contracts.safety import ACTION_SEVERITY, Action, Layer, SafetyVerdict

# Rule weights: one strong rule blocks alone; a weak one needs company (two weak -> 0.58).
STRONG = 0.9
MEDIUM = 0.6
WEAK = 0.35


@dataclass(frozen=True)
class Rule:
    """A named pattern and how much risk one match adds."""

    name: str
    pattern: re.Pattern[str]
    weight: float


def rule(name: str, pattern: str, weight: float) -> Rule:
    """Compile a rule; patterns are matched against lowercase, normalised text."""
    return Rule(name, re.compile(pattern, re.DOTALL), weight)


def noisy_or(weights: Iterable[float]) -> float:
    """Combine independent pieces of evidence: 1 - prod(1 - w)."""
    keep = 1.0
    for weight in weights:
        keep *= 1.0 - max(0.0, min(1.0, weight))
    return 1.0 - keep


def allow(layer: Layer, reason: str = "nothing found", score: float = 0.0) -> SafetyVerdict:
    """An `allow` verdict for `layer`."""
    return SafetyVerdict(layer=layer, action="allow", score=round(score, 4), reason=reason)


def most_severe(actions: Iterable[Action]) -> Action:
    """The most severe of `actions` (`allow` when there are none)."""
    return max(actions, key=ACTION_SEVERITY.__getitem__, default="allow")


def combine(layer: Layer, checks: Sequence[SafetyVerdict]) -> SafetyVerdict:
    """One verdict from several layers' verdicts: the most severe action wins.

    Signals are prefixed with their layer so a dashboard can tell `pii:EMAIL` found in the
    input from one found in the output. The redacted text is the last layer's, because the
    layers that redact run in sequence, each on the previous one's output.
    """
    action = most_severe(v.action for v in checks)
    deciding = [v for v in checks if v.action == action and v.action != "allow"]
    redacted = next((v.redacted_text for v in reversed(checks) if v.redacted_text), None)
    return SafetyVerdict(
        layer=layer,
        action=action,
        score=max((v.score for v in checks), default=0.0),
        signals=[f"{v.layer}:{s}" for v in checks for s in v.signals],
        redacted_text=redacted if action != "block" else None,
        reason="; ".join(f"{v.layer}: {v.reason}" for v in deciding) or "all checks passed",
        remedy=next((v.remedy for v in deciding if v.remedy), None),
        checks=list(checks),
    )
