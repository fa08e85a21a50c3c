"""Layer 4: moderation — harmful requests on the way in, leaks and harm on the way out.

An answer is checked for five things, each with its own action in `ModerationPolicy`:

- a system-prompt leak: the share of the system prompt's word n-grams found in the answer
  (n-grams also in the retrieved context or the user's input don't count: quoting a source
  that happens to sit in the system prompt is not a leak);
- secrets (API keys, tokens, passwords) the user did not supply;
- another tenant's data: any of the caller's forbidden strings or ids;
- PII that is not the user's own (optionally: nor in the retrieved context), redacted;
- operational help with serious harm.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from keel.contracts.safety import Action, ModerationPolicy, PiiFinding, SafetyVerdict
from keel.safety.common import allow, most_severe
from keel.safety.harmful import harmful_score
from keel.safety.pii import canonical, find_pii

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# The standard refusal shares words with most RAG system prompts ("...say you don't have
# enough information"), so it is removed before looking for a leak.
NOT_ENOUGH_INFO = re.compile(
    r"\b(?:do not|don't|does not|doesn't) (?:have|contain) enough information\b", re.IGNORECASE
)
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?\n])")


def strip_not_enough_info(text: str) -> str:
    """`text` without the sentences that say it lacks enough information."""
    # Sentence by sentence, not one regex over the text: a pattern reaching back to the
    # sentence start would be quadratic on a long text without full stops.
    return "".join(s for s in _SENTENCE_SPLIT.split(text) if not NOT_ENOUGH_INFO.search(s))


# A verbatim run this long is a leak whatever share of a long system prompt it is.
LEAK_RUN_WORDS = 20


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _ngrams(words: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def system_prompt_overlap(
    answer: str, system_prompt: str, *, n: int = 5, exclude: Iterable[str] = ()
) -> float:
    """Share of the system prompt's word n-grams that appear in `answer`, in [0, 1].

    N-grams that also occur in any `exclude` text (the retrieved context, the user's input)
    are left out of both sides. A run of `LEAK_RUN_WORDS` copied words counts as 1.0.
    """
    prompt_words = _words(system_prompt)
    answer_words = _words(strip_not_enough_info(answer))
    if not prompt_words or not answer_words:
        return 0.0
    n = min(n, len(prompt_words))
    excluded: set[tuple[str, ...]] = set()
    for text in exclude:
        excluded |= _ngrams(_words(text), n)
    prompt = _ngrams(prompt_words, n) - excluded
    if not prompt:
        return 0.0
    answer_grams = _ngrams(answer_words, n)
    shared = prompt & answer_grams
    if len(prompt_words) >= LEAK_RUN_WORDS:
        long_prompt = _ngrams(prompt_words, LEAK_RUN_WORDS)
        long_excluded: set[tuple[str, ...]] = set()
        for text in exclude:
            long_excluded |= _ngrams(_words(text), LEAK_RUN_WORDS)
        if (long_prompt - long_excluded) & _ngrams(answer_words, LEAK_RUN_WORDS):
            return 1.0
    return len(shared) / len(prompt)


def find_forbidden(text: str, forbidden: Iterable[str]) -> list[int]:
    """Indexes of the forbidden strings that occur in `text` (case-insensitive, whole words)."""
    found = []
    for i, term in enumerate(forbidden):
        term = term.strip()
        if term and re.search(rf"(?<!\w){re.escape(term)}(?!\w)", text, re.IGNORECASE):
            found.append(i)
    return found


def foreign_pii(answer: str, *, allowed_sources: Iterable[str]) -> list[PiiFinding]:
    """PII in `answer` whose value occurs in none of `allowed_sources` (not even reformatted)."""
    allowed: set[tuple[str, str]] = set()
    for source in allowed_sources:
        allowed |= {(f.type, canonical(f.type, f.value)) for f in find_pii(source)}
    return [f for f in find_pii(answer) if (f.type, canonical(f.type, f.value)) not in allowed]


def moderate_input(text: str, policy: ModerationPolicy | None = None) -> SafetyVerdict:
    """Refuse requests for operational help with serious harm (weapons, malware, abuse...)."""
    policy = policy or ModerationPolicy()
    if not policy.enabled:
        return allow("moderation", "disabled")
    score, signals = harmful_score(text)
    if score < 0.5:
        return SafetyVerdict(
            layer="moderation", action="allow", score=round(score, 4), signals=signals,
            reason="no harmful request found",
        )  # fmt: skip
    return SafetyVerdict(
        layer="moderation",
        action=policy.harmful_input_action,
        score=round(score, 4),
        signals=signals,
        reason="harmful request: " + ", ".join(s.split(":")[1] for s in signals),
    )


def moderate_output(
    answer: str,
    *,
    user_input: str = "",
    system_prompt: str = "",
    context: str = "",
    forbidden: Sequence[str] = (),
    policy: ModerationPolicy | None = None,
) -> SafetyVerdict:
    """Check a model's answer before anyone sees it.

    Args:
        answer: The model's output.
        user_input: What the user wrote; PII and secrets found there are theirs to see.
        system_prompt: The system prompt the answer must not reveal.
        context: The retrieved context the answer was generated from.
        forbidden: Strings and ids the answer must not contain (other tenants' names and
            ids); added to the policy's `forbidden_terms`.
        policy: Thresholds and actions; the defaults when None.

    Returns:
        A verdict of layer `moderation`. With only foreign PII found, the action is the
        policy's `foreign_pii_action` (`redact`) and `redacted_text` has the foreign values
        replaced by `[REDACTED_<TYPE>]`, which no restore map will ever fill.
    """
    policy = policy or ModerationPolicy()
    if not policy.enabled:
        return allow("moderation", "disabled")
    findings: list[tuple[str, Action, float, str]] = []

    if system_prompt.strip():
        overlap = system_prompt_overlap(
            answer, system_prompt, n=policy.leak_ngram, exclude=(context, user_input)
        )
        if overlap >= policy.leak_threshold:
            findings.append(
                (f"leak:system_prompt({overlap:.2f})", policy.leak_action, overlap,
                 f"answer repeats {overlap:.0%} of the system prompt")
            )  # fmt: skip

    terms = [*policy.forbidden_terms, *forbidden]
    hits = find_forbidden(answer, terms)
    if hits:
        findings.append(
            (f"forbidden:{len(hits)}", policy.forbidden_action, 1.0,
             f"answer contains {len(hits)} forbidden term(s) (another tenant's data)")
        )  # fmt: skip

    sources = [user_input, context] if policy.allow_context_pii else [user_input]
    foreign = foreign_pii(answer, allowed_sources=sources)
    secrets = [f for f in foreign if f.type == "SECRET"]
    personal = [f for f in foreign if f.type != "SECRET"]
    if secrets:
        findings.append(
            (
                "secret:SECRET",
                policy.secret_action,
                1.0,
                f"answer contains {len(secrets)} secret(s)",
            )
        )
    for kind in sorted({f.type for f in personal}):
        findings.append(
            (f"pii:{kind}", policy.foreign_pii_action, 0.5, f"answer contains another's {kind}")
        )

    score, harmful = harmful_score(answer, decode=False)
    if score >= 0.5:
        findings.append(
            (harmful[0], policy.harmful_output_action, score, "answer gives harmful instructions")
        )

    if not findings:
        return allow("moderation", "answer is clean")
    action = most_severe(a for _, a, _, _ in findings)
    redacted = None
    if action == "redact":
        redacted = answer
        # Unnumbered, so no restore map (its keys are `[EMAIL_1]`-style) can ever fill one in.
        for finding in sorted(foreign, key=lambda f: -f.start):
            mark = f"[REDACTED_{finding.type}]"
            redacted = redacted[: finding.start] + mark + redacted[finding.end :]
    return SafetyVerdict(
        layer="moderation",
        action=action,
        score=round(max(s for _, _, s, _ in findings), 4),
        signals=[s for s, _, _, _ in findings],
        redacted_text=redacted,
        reason="; ".join(r for _, a, _, r in findings if a == action),
    )
