"""Layer 5: grounding — is the answer supported by the retrieved context?

Lexical, deterministic and fast, in the spirit of the local extractive provider: each answer
sentence is *supported* when most of its content words (stopwords dropped, light suffix
stemming) occur in the context, and when every number it states occurs there too (a changed
figure is the most common and most harmful hallucination in document QA). `[Source n]`
markers are ignored, and the standard "I don't have enough information" answer is grounded
by definition. Paraphrase defeats a lexical check, so the default thresholds are lenient;
an answer below them is regenerated, answered with "not enough information", or escalated.
"""

from __future__ import annotations

import re

from keel.contracts.safety import GroundingPolicy, SafetyVerdict
from keel.safety.common import allow
from keel.safety.moderation import NOT_ENOUGH_INFO, strip_not_enough_info

_CITATION = re.compile(
    r"\[(?:sources?|src|doc(?:ument)?)?\s*\d+(?:\s*[,;-]\s*\d+)*\]"
    r"|\((?:sources?)\s*\d+(?:\s*[,;-]\s*\d+)*\)",
    re.IGNORECASE,
)
_CITED = re.compile(r"\[source\s*(\d+)", re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_TOKEN = re.compile(r"[a-z0-9]+(?:[.,]\d+)*")
_NUMBER = re.compile(r"^\d+(?:[.,]\d+)*$")
_STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each few
    for from further had has have having he her here hers herself him himself his how i if in
    into is it its itself just me more most my myself no nor not of off on once only or other
    our ours ourselves out over own same she should so some such than that the their theirs
    them themselves then there these they this those through to too under until up very was we
    were what when where which while who whom why will with would you your yours yourself
    yourselves according based source sources document documents context provided states
    stated say says said per may might must shall also however therefore thus yes""".split()
)
_SUFFIXES = ("ations", "ation", "ings", "ing", "ies", "ied", "es", "ed", "ly", "s")


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _content(text: str) -> list[str]:
    return [
        t if _NUMBER.match(t) else _stem(t)
        for t in _TOKEN.findall(text.lower())
        if t not in _STOPWORDS and (len(t) > 1 or t.isdigit())
    ]


def answer_sentences(answer: str) -> list[str]:
    """The sentences of `answer` that make claims: citations, refusals and bullets removed."""
    text = strip_not_enough_info(_CITATION.sub(" ", answer))
    sentences = []
    for raw in _SENTENCE.split(text):
        sentence = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s+", "", raw).strip()
        if len(_content(sentence)) >= 2:
            sentences.append(sentence)
    return sentences


def sentence_support(sentence: str, context_words: set[str]) -> tuple[float, bool]:
    """Share of the sentence's content words found in the context, and whether its numbers are."""
    words = _content(sentence)
    if not words:
        return 1.0, True
    numbers_ok = all(w in context_words for w in words if _NUMBER.match(w))
    return sum(w in context_words for w in words) / len(words), numbers_ok


def _tally(sentences: list[str], context: str, threshold: float) -> tuple[int, bool]:
    """How many sentences are supported, and whether any states a number the context lacks."""
    words = set(_content(context))
    supported = 0
    bad_numbers = False
    for sentence in sentences:
        share, numbers_ok = sentence_support(sentence, words)
        bad_numbers |= not numbers_ok
        supported += share >= threshold and numbers_ok
    return supported, bad_numbers


def grounded_share(answer: str, context: str, *, sentence_threshold: float = 0.6) -> float | None:
    """Share of claim sentences supported by `context`, or None when there is no claim."""
    sentences = answer_sentences(answer)
    if not sentences:
        return None
    supported, _ = _tally(sentences, context, sentence_threshold)
    return supported / len(sentences)


def check_grounding(
    answer: str, context: str, policy: GroundingPolicy | None = None
) -> SafetyVerdict:
    """Decide whether `answer` is grounded in `context`.

    Args:
        answer: The generated answer, `[Source n]` citations included.
        context: The assembled sources the answer was generated from.
        policy: Thresholds and the remedy for an ungrounded answer; the defaults when None.

    Returns:
        A verdict of layer `grounding`: `score` is 1 minus the supported share; signals
        give `supported:k/n`, `unsupported_number` and `unknown_citation` where they apply.
        When ungrounded, the action is `escalate` (remedy `escalate`) or `block` with the
        remedy `regenerate` or `not_enough_information` for the workflow to apply.
    """
    policy = policy or GroundingPolicy()
    if not policy.enabled:
        return allow("grounding", "disabled")
    sentences = answer_sentences(answer)
    if not sentences:
        no_answer = bool(NOT_ENOUGH_INFO.search(answer))
        reason = "the answer says it lacks information" if no_answer else "no claim to check"
        signals = ["no_answer"] if no_answer else []
        return SafetyVerdict(
            layer="grounding", action="allow", score=0.0, signals=signals, reason=reason
        )
    supported, bad_numbers = _tally(sentences, context, policy.sentence_support)
    share = supported / len(sentences)
    signals = [f"supported:{supported}/{len(sentences)}"]
    if bad_numbers:
        signals.append("unsupported_number")
    known = {int(n) for n in re.findall(r"^\[Source (\d+)\]", context, re.MULTILINE)}
    if known and any(int(n) not in known for n in _CITED.findall(answer)):
        signals.append("unknown_citation")
    score = round(1.0 - share, 4)
    if share >= policy.threshold:
        return SafetyVerdict(
            layer="grounding", action="allow", score=score, signals=signals,
            reason=f"{share:.0%} of sentences supported",
        )  # fmt: skip
    remedy = policy.ungrounded_remedy
    return SafetyVerdict(
        layer="grounding",
        action="escalate" if remedy == "escalate" else "block",
        score=score,
        signals=signals,
        reason=f"only {share:.0%} of sentences supported by the context "
        f"(threshold {policy.threshold:.0%}); remedy: {remedy}",
        remedy=remedy,
    )
