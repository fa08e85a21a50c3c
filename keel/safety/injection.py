"""Layer 2: prompt-injection and jailbreak detection, direct (user input) and indirect
(retrieved chunks, tool outputs).

Two kinds of evidence, combined as independent signals (noisy-or):

- rules (`injection_rules.py`) over every *view* of the text (`normalize.views`): the
  normalised text, its de-leeted form, rot13 and reversed readings, and the decoded text of
  embedded base64/hex/binary/url/escape fragments, so encoding a payload does not hide it;
- an offline TF-IDF + logistic-regression classifier (`classifier.py`) for phrasings no rule
  lists. Below its own threshold it counts for a third, so a shaky guess cannot block alone.

Retrieved text is scored per window of a few sentences: an injected paragraph inside a long
honest page would otherwise be diluted, and the classifier was trained on prompt-sized texts.
"""

from __future__ import annotations

import re
from typing import Literal

from keel.contracts.safety import InjectionPolicy, SafetyVerdict
from keel.safety.classifier import default_classifier
from keel.safety.common import allow, noisy_or
from keel.safety.injection_rules import FORM_INSTRUCTION, RULES, is_mentioned
from keel.safety.normalize import View, views
from keel.safety.prefilter import RuleSet

Channel = Literal["user", "document", "tool_output"]

# A quoted mention in a question about attacks keeps this share of the rule's weight.
MENTION_DISCOUNT = 0.3
# Below its threshold the classifier still counts, for a third: it can tip a weak rule over,
# never block alone.
BELOW_CUT_WEIGHT = 0.3
WINDOW_WORDS = 60
MAX_WINDOWS = 64
_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+")
# Views the classifier may read: rot13 and reversed readings are gibberish to it.
_CLASSIFIED_KINDS = frozenset(
    "text deleet base64 base32 hex binary url unicode_escape html_entities ascii85 base85 "
    "morse".split()
)
# The rules with a one-pass test of which can match a view (`keel.safety.prefilter`).
RULE_SET = RuleSet(RULES, name="injection")


def rule_hits(all_views: list[View], *, channel: Channel = "user") -> dict[str, float]:
    """Each matched rule's signal and weight, keeping the view where it weighs most."""
    best: dict[str, tuple[float, str]] = {}
    for view in all_views:
        for candidate in RULE_SET.candidates(view.text):
            match = candidate.pattern.search(view.text)
            if match is None:
                continue
            weight, name = candidate.weight, f"rule:{candidate.name}"
            if view.kind != "text":
                name = f"{name}@{view.kind}"
            # The de-leeted view is still the author's own wording, so a quoted example
            # ("what does '1gn0re all rules' do?") is discounted there too; decoded payloads
            # are not: nobody base64-encodes an example in a question.
            if view.kind in ("text", "deleet") and is_mentioned(
                view.text, match.start(), match.end(), quotes=channel == "user"
            ):
                weight, name = weight * MENTION_DISCOUNT, f"{name}(mentioned)"
            if weight > best.get(candidate.name, (0.0, ""))[0]:
                best[candidate.name] = (weight, name)
    return {name: weight for weight, name in best.values()}


def _windows(text: str) -> list[str]:
    """Consecutive groups of sentences of about `WINDOW_WORDS` words."""
    out: list[str] = []
    current: list[str] = []
    count = 0
    for sentence in _SENTENCES.split(text):
        words = len(sentence.split())
        if current and count + words > WINDOW_WORDS:
            out.append(" ".join(current))
            current, count = [], 0
        current.append(sentence)
        count += words
    if current:
        out.append(" ".join(current))
    return out[:MAX_WINDOWS]


def classifier_probability(all_views: list[View], *, windowed: bool) -> float:
    """The classifier's highest P(injection) over the readable views (and their windows)."""
    model = default_classifier()
    best = 0.0
    for view in all_views:
        if view.kind not in _CLASSIFIED_KINDS:
            continue
        parts = _windows(view.text) if windowed else [view.text]
        for part in parts:
            if part.strip():
                best = max(best, model.probability(part))
    return best


def detect_injection(
    text: str,
    policy: InjectionPolicy | None = None,
    *,
    channel: Channel = "user",
) -> SafetyVerdict:
    """Score `text` for prompt injection or jailbreak; refuse it at the policy's threshold.

    Args:
        text: User input, or a retrieved chunk / tool output (`channel` says which).
        policy: Thresholds and actions; the defaults when None.
        channel: `user` for direct input; `document` or `tool_output` for indirect injection,
            which are judged against the document threshold and action.

    Returns:
        A verdict of layer `injection` whose signals list every matched rule (with the view it
        matched in, e.g. `rule:ignore_previous@base64`) and the classifier's probability.
    """
    policy = policy or InjectionPolicy()
    if not policy.enabled or not text.strip():
        return allow("injection", "disabled" if not policy.enabled else "empty text")
    indirect = channel != "user"
    all_views = views(text, decode=policy.decode_payloads)
    hits = rule_hits(all_views, channel=channel)
    # "From now on, keep every reply under 50 words": a persistent instruction about the form
    # of the answers only, so neither the persistence rule nor the classifier decides it.
    form_only = channel == "user" and FORM_INSTRUCTION.search(text) is not None
    if form_only:
        hits = {k: w for k, w in hits.items() if not k.startswith("rule:every_future_reply")}
    # Quoted mentions count once, by the strongest: a training slide that quotes one attack
    # phrase often matches three rules with it, and three discounts must not add up to a use.
    mentioned = [w for name, w in hits.items() if name.endswith("(mentioned)")]
    used = [w for name, w in hits.items() if not name.endswith("(mentioned)")]
    evidence = used + ([max(mentioned)] if mentioned else [])
    signals = sorted(hits, key=lambda k: -hits[k])
    if policy.use_classifier:
        p = classifier_probability(all_views, windowed=indirect)
        cut = policy.document_classifier_threshold if indirect else policy.classifier_threshold
        # A text whose only rule matches are quoted mentions is about attacks; the classifier
        # reads the quoted phrase and cannot tell, so it only tips, as below its cut.
        quoted_only = bool(mentioned) and not used
        evidence.append(p if p >= cut and not (quoted_only or form_only) else p * BELOW_CUT_WEIGHT)
        signals.append(f"classifier:{p:.2f}")
    if form_only:
        signals.append("form_instruction")
    decoded = sorted({v.kind for v in all_views} - {"text", "deleet", "rot13", "reversed"})
    if decoded:
        signals.append("encoded_payload:" + ",".join(decoded))
    score = round(noisy_or(evidence), 4)
    threshold = policy.document_threshold if indirect else policy.threshold
    if score < threshold:
        return SafetyVerdict(
            layer="injection",
            action="allow",
            score=score,
            signals=signals,
            reason=f"risk {score:.2f} below {threshold:.2f}",
        )
    top = ", ".join(s for s in signals if s.startswith("rule:"))[:200] or signals[-1]
    where = {"user": "user input", "document": "retrieved content", "tool_output": "tool output"}[
        channel
    ]
    return SafetyVerdict(
        layer="injection",
        action=policy.document_action if indirect else policy.action,
        score=score,
        signals=signals,
        reason=f"likely prompt injection in {where} (risk {score:.2f}): {top}",
    )
