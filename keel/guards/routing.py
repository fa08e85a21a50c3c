"""Complexity routing: score a request from its surface features, then pick a model tier.

Scoring reads only the text and the context size, with fixed rules and weights: no model, no
clock, no randomness, so the workflow can decide the route itself and a replay reaches the
same tier. The features are cheap signals, not understanding; they are recorded with the
decision so a misroute can be seen and the weights tuned.

Each feature yields a value in [0, 1], multiplied by its weight; the weights sum to 1, so the
score is in [0, 1]:

| feature         | weight | value in [0, 1]                                          |
|-----------------|--------|----------------------------------------------------------|
| `length`        | 0.10   | request tokens / 1000                                    |
| `context`       | 0.20   | context tokens / 32000                                   |
| `question_type` | 0.25   | factoid 0, procedural 0.4, reasoning 1                   |
| `multi_step`    | 0.20   | markers ("and then", "step by step", lists, extra "?")/3 |
| `code`          | 0.125  | 1 with a code block, else distinct code signals / 2      |
| `maths`         | 0.125  | distinct maths signals (operators, equations, terms) / 2 |

Values are capped at 1. Factoid: who/what/when/where, "how many/much/long". Procedural: "how do
I", "steps to", "summarise". Reasoning: why, compare, analyse, evaluate, trade-offs, and requests
to compose something (write a function, prove, debug).
"""

from __future__ import annotations

import re

from keel.contracts.guards import (
    ComplexityScore,
    QuestionType,
    RouteDecision,
    RoutingConfig,
    Tier,
)
from keel.guards.costing import estimate_tokens

FEATURE_WEIGHTS: dict[str, float] = {
    "length": 0.10,
    "context": 0.20,
    "question_type": 0.25,
    "multi_step": 0.20,
    "code": 0.125,
    "maths": 0.125,
}

# Where a feature saturates: past these a request is simply "long" / "needs a big context".
_LENGTH_SATURATION_TOKENS = 1_000
_CONTEXT_SATURATION_TOKENS = 32_000
_MULTI_STEP_SATURATION = 3
_SIGNAL_SATURATION = 2

_QUESTION_TYPE_VALUE: dict[QuestionType, float] = {
    "factoid": 0.0,
    "procedural": 0.4,
    "reasoning": 1.0,
}

# Asking for an argument, a comparison or something composed (code, a proof) needs a model
# that reasons; the tell is the verb, wherever it sits in the request.
_REASONING = re.compile(
    r"\b(?:why|explain|compare|comparison|contrast|analy[sz]e|analysis|evaluate|assess"
    r"|critique|justify|trade-?offs?|pros and cons|implications?|recommend|differences? between"
    r"|what if|should (?:we|i)|root cause|refactor|debug|optimi[sz]e|prove|derive"
    r"|(?:write|draft|design|implement|build) (?:a|an|the|me|some)\b)",
    re.IGNORECASE,
)
# "How do I ...": a known procedure to retrieve, not an argument to build. "How many/much/long"
# do not match and stay factoids.
_PROCEDURAL = re.compile(
    r"\b(?:how (?:do|does|did|can|could|should|would|to|is|are)\b|steps? (?:to|for)\b"
    r"|walk me through|summari[sz]e|describe|outline|set up|configure)",
    re.IGNORECASE,
)

_MULTI_STEP_PHRASES = re.compile(
    r"\band then\b|\bstep[- ]by[- ]step\b|\bafter that\b|\bafterwards\b|\bfinally\b"
    r"|\bfirst(?:ly)?,|\bsecond(?:ly)?,|\bnext,|, then\b|\bfollowed by\b"
    r"|\bonce (?:that|this) is done\b",
    re.IGNORECASE,
)
_LIST_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-*\u2022]|\(?[a-z]\))\s+\S", re.MULTILINE)
_INLINE_ENUM = re.compile(r"\(\d+\)")

_CODE_FENCE = re.compile(r"```")
_CODE_SIGNALS = (
    re.compile(r"\bdef \w+\s*\("),
    re.compile(r"\bclass \w+\s*[:(]"),
    re.compile(r"^\s*(?:from [\w.]+ )?import \w+", re.MULTILINE),
    re.compile(r"\bfunction\s*\w*\s*\("),
    re.compile(r"\b(?:const|let|var)\s+\w+\s*="),
    re.compile(r"=>|->|::|[{};]\s*$", re.MULTILINE),
    re.compile(r"\bSELECT\b[\s\S]+?\bFROM\b"),
    re.compile(r"`[^`\n]+`"),
    re.compile(r"Traceback \(most recent call last\)|\b\w+(?:Error|Exception):"),
    re.compile(
        r"\b(?:python|javascript|typescript|java|golang|rust|sql|regex|bash|shell script"
        r"|function|code|stack trace|compile\w*|json|yaml)\b",
        re.IGNORECASE,
    ),
)
_MATHS_SIGNALS = (
    # Operands are digits, one-letter variables or brackets, so `SELECT * FROM` is not maths.
    re.compile(r"(?:\d|(?<![A-Za-z])[a-z]|\))\s*[+*^\u00d7\u00f7]\s*(?:\d|[a-z](?![A-Za-z])|\()"),
    re.compile(r"=\s*-?\d"),
    re.compile(r"\\(?:frac|sum|int|sqrt)\b|[\u2211\u222b\u221a\u2264\u2265\u2260\u03c0]"),
    re.compile(
        r"\b(?:equations?|integral|derivative|probabilit\w*|variance|standard deviation"
        r"|regression|solve for|proof|formula|matrix|compound interest|expected value"
        r"|calculat\w*|percentiles?)\b",
        re.IGNORECASE,
    ),
)


def _question_type(text: str) -> QuestionType:
    if _REASONING.search(text):
        return "reasoning"
    if _PROCEDURAL.search(text):
        return "procedural"
    return "factoid"


def _multi_step_markers(text: str) -> int:
    markers = len(_MULTI_STEP_PHRASES.findall(text))
    items = len(_LIST_ITEM.findall(text)) + len(_INLINE_ENUM.findall(text))
    if items >= 2:  # one bullet is formatting; two or more are a list of things to do
        markers += items
    markers += max(text.count("?") - 1, 0)
    return markers


def _signals(text: str, patterns: tuple[re.Pattern[str], ...]) -> int:
    """How many distinct matches of `patterns` occur in `text`; repeating one adds nothing."""
    found = {match.group(0).lower() for pattern in patterns for match in pattern.finditer(text)}
    return len(found)


def score_complexity(text: str, *, context_tokens: int = 0) -> ComplexityScore:
    """Score how demanding a request is, from surface features.

    Args:
        text: The request (question or instruction) as the user wrote it.
        context_tokens: Tokens of context the answer must read (retrieved chunks, history).

    Returns:
        The score in [0, 1], each feature's contribution, the question type and token counts.

    Raises:
        ValueError: `context_tokens` is negative.
    """
    if context_tokens < 0:
        raise ValueError("context_tokens must be >= 0")
    tokens = estimate_tokens(text)
    question_type = _question_type(text)
    code = 1.0 if _CODE_FENCE.search(text) else _signals(text, _CODE_SIGNALS) / _SIGNAL_SATURATION
    values = {
        "length": tokens / _LENGTH_SATURATION_TOKENS,
        "context": context_tokens / _CONTEXT_SATURATION_TOKENS,
        "question_type": _QUESTION_TYPE_VALUE[question_type],
        "multi_step": _multi_step_markers(text) / _MULTI_STEP_SATURATION,
        "code": code,
        "maths": _signals(text, _MATHS_SIGNALS) / _SIGNAL_SATURATION,
    }
    # Rounded so the recorded decision reads cleanly in the Temporal UI; the score is the sum
    # of what is recorded, so the two always agree.
    features = {
        name: round(FEATURE_WEIGHTS[name] * min(value, 1.0), 4) for name, value in values.items()
    }
    score = min(round(sum(features.values()), 4), 1.0)
    return ComplexityScore(
        score=score,
        features=features,
        question_type=question_type,
        estimated_tokens=tokens,
        context_tokens=context_tokens,
    )


def route(score: ComplexityScore, tiers: RoutingConfig) -> RouteDecision:
    """Map a complexity score to a tier and that tier's fallback chain.

    Args:
        score: From `score_complexity`.
        tiers: Thresholds and per-tier model chains.

    Returns:
        The tier (`cheap` below `medium_threshold`, `medium` below `expensive_threshold`,
        else `expensive`), its ordered models, and the score and features that decided it.
    """
    tier: Tier
    if score.score < tiers.medium_threshold:
        tier = "cheap"
    elif score.score < tiers.expensive_threshold:
        tier = "medium"
    else:
        tier = "expensive"
    return RouteDecision(
        tier=tier,
        models=tiers.chain(tier),
        score=score.score,
        features=dict(score.features),
        question_type=score.question_type,
    )
