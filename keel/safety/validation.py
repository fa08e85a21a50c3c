"""Layer 1: input validation — encoding, control and invisible characters, size limits, and
requests built to burn the budget (huge outputs, endless loops).

This layer runs first and is the cheapest: it looks only at characters and counts, never at
meaning, except for budget abuse, where a request for "a million words" or "repeat forever"
is refused here because it is a size limit on the *output* the request asks for.
"""

from __future__ import annotations

import math
import re
import unicodedata

from keel.contracts.safety import Action, SafetyVerdict, ValidationPolicy
from keel.safety.common import allow, most_severe
from keel.safety.normalize import BIDI_CONTROLS, INVISIBLE, TAG_RANGE, normalize

_ALLOWED_CONTROLS = frozenset("\n\t")
# ASCII control characters other than those allowed ("\r" is judged by what follows it).
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_MULTIPLIERS = {"k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6, "billion": 1e9,
                "trillion": 1e12, "hundred": 1e2}  # fmt: skip
# Words of output one unit stands for; rough, only the order of magnitude matters.
_WORDS_PER_UNIT = {
    "word": 1.0, "token": 0.75, "character": 0.2, "char": 0.2, "letter": 0.2, "digit": 0.2,
    "line": 10.0, "sentence": 15.0, "paragraph": 120.0, "page": 500.0, "chapter": 5000.0,
    "essay": 1000.0, "article": 1000.0, "story": 1000.0, "book": 80000.0, "time": 1.0,
    "item": 1.0, "example": 20.0, "entry": 5.0, "entries": 5.0, "row": 5.0, "name": 1.0,
    "number": 1.0, "prime": 1.0, "joke": 30.0, "poem": 100.0, "question": 15.0,
    "response": 200.0, "variation": 50.0, "copy": 200.0, "copies": 200.0, "place": 0.2,
    "decimal": 0.2, "description": 50.0, "review": 80.0, "tweet": 30.0, "post": 150.0,
    "email": 150.0, "message": 50.0, "summary": 150.0, "summaries": 150.0, "report": 1000.0,
    "record": 5.0, "profile": 50.0, "password": 1.0, "comment": 30.0, "headline": 10.0,
}  # fmt: skip
# Verbs that make output; "summarise this 300-page report" reads a size, it does not ask one.
_REQUEST_VERB = (
    r"(?:write|generate|produce|give|list|print|output|repeat|say|type|create|compose|count|"
    r"enumerate|continue|spell|recite|draft|make|return|send|show|tell|provide|expand|"
    r"elaborate|call|run|invoke|fetch|loop)"
)
_QUANTITY = re.compile(
    rf"\b{_REQUEST_VERB}\b[^.?!\n]{{0,60}}?\b(?:(this|the|that|our|my|these|those|attached|"
    rf"uploaded|your|its)\s+)?(\d[\d,._]*(?:\.\d+)?|a|one|ten|a few)\s*-?\s*"
    r"(k|thousand|m|million|billion|trillion|hundred)?(?:\s+(?:thousand|million))?\s*"
    r"(?:(?:more|different|unique|new|separate|distinct|full|fake|random|product|customer|"
    r"detailed|long|short|blog|decimal)\s+){0,3}"
    r"(word|token|character|char|letter|digit|line|sentence|paragraph|page|chapter|essay|"
    r"article|story|book|time|item|example|entry|entries|row|name|number|prime|joke|poem|"
    r"question|response|variation|cop(?:y|ies)|place|decimal|description|review|tweet|post|"
    r"email|message|summary|summaries|report|record|profile|password|comment|headline)s?\b"
)
_LOOP_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        (
            "endless_repetition",
            r"\b(?:repeat|say|print|write|output|type|generate|list|continue|keep (?:going|"
            r"\w+ing)|count)\b"
            r"[^.?!\n]{0,80}\b(?:forever|indefinitely|infinitely|endlessly|eternally|for ever|"
            r"never stop|"
            r"without (?:ever )?stopping|until i (?:say|tell you to) stop|non-?stop|over and over"
            r"(?: again)?(?: forever)?|in an? (?:infinite|endless|never-ending) loop|until the "
            r"end of time|until you (?:run out|crash|hit the (?:token |output )?limit|can't)|"
            r"as many times as (?:you can|possible))",
        ),
        (
            "never_stop",
            r"\b(?:never|don't|do not|must not|mustn't) (?:ever )?(?:stop|end|finish|conclude)\b"
            r"[^.?!\n]{0,30}\b(?:writing|generating|talking|responding|repeating|counting|"
            r"listing|printing|typing|outputting|the (?:list|story|response|output))",
        ),
        (
            "count_to_huge",
            r"\bcount\b[^.?!\n]{0,20}\bto\s+(?:infinity|a (?:million|billion|trillion)|one "
            r"(?:million|billion|trillion)|\d[\d,]{6,}|\d+ (?:million|billion|trillion))",
        ),
        (
            "enumerate_everything",
            r"\b(?:list|print|output|write out|enumerate|generate|give me)\b[^.?!\n]{0,20}"
            r"\b(?:every|all(?: the)?)\s+(?:possible|single)?\s*(?:[\w-]+\s+){0,2}?(?:primes?|"
            r"prime numbers|integers|"
            r"numbers|digits of pi|words in the (?:english )?(?:language|dictionary)|"
            r"combinations|permutations|passwords|ipv4 addresses|(?:possible )?strings)\b",
        ),
        (
            "infinite_output",
            r"\b(?:an? )?(?:infinite|endless|never-ending|unbounded|unlimited) (?:loop|list|"
            r"sequence|stream|series|conversation|chain|recursion|number of (?:responses|messages|"
            r"answers|questions))\b",
        ),
        (
            "fan_out",
            r"\bfor (?:each|every|all)(?: one)? (?:of )?(?:the |these |those )?(?:\d[\d,]{3,}|"
            r"thousands|millions)\b",
        ),
        (
            "max_length",
            r"\b(?:as long as (?:possible|you can|you are able)|the longest (?:possible )?"
            r"(?:answer|response|text|story|output|essay)|use (?:all|every one) of your "
            r"(?:tokens|output|context)|max(?:imum|imal)? (?:length|tokens|output)(?: possible"
            r"| you can)?|until you (?:run out of|hit|reach) (?:the )?(?:tokens?|space|limit|"
            r"context))\b",
        ),
        (
            "recursive_agents",
            r"\b(?:call|invoke|run|spawn|start|launch|trigger|query)\b[^.?!\n]{0,40}\b(?:yourself|"
            r"itself|this (?:tool|agent|workflow|function)|(?:the|every|each) (?:tool|api|search|"
            r"agent|function|endpoint))\b[^.?!\n]{0,40}\b(?:recursively|repeatedly|in a loop|"
            r"again and again|for ever|forever|endlessly|\d{3,} times|for every (?:result|"
            r"word|line|item))",
        ),
        (
            "spawn_many",
            r"\b(?:spawn|create|start|launch|run|open)\b[^.?!\n]{0,20}\b(?:\d{3,}|hundreds of|"
            r"thousands of|millions of|as many as possible|unlimited)\s+(?:parallel |concurrent |"
            r"sub-?)?(?:agents|workers|threads|sessions|requests|workflows|copies|instances|"
            r"tasks|calls)\b",
        ),
    )
)


def _number(raw: str, scale: str | None) -> float:
    words = {"a": 1.0, "one": 1.0, "ten": 10.0, "a few": 3.0}
    if raw in words:
        value = words[raw]
    else:
        cleaned = raw.replace(",", "").replace("_", "")
        try:
            value = float(cleaned)
        except ValueError:
            # "1.000.000" is a million in much of Europe.
            value = float(cleaned.replace(".", "")) if cleaned.replace(".", "").isdigit() else 0
    return value * _MULTIPLIERS.get(scale or "", 1.0)


def requested_words(text: str) -> float:
    """The largest output, in words, that `text` explicitly asks for (0 when none)."""
    largest = 0.0
    for match in _QUANTITY.finditer(normalize(text)):
        determiner, raw, scale, unit = match.groups()
        if determiner:  # "this 300-page report" describes something that exists
            continue
        unit = unit.rstrip("s") if unit not in ("entries", "copies") else unit
        largest = max(largest, _number(raw, scale) * _WORDS_PER_UNIT.get(unit, 1.0))
    return largest


def detect_budget_abuse(text: str, policy: ValidationPolicy | None = None) -> list[str]:
    """Signals of a request built to make the run expensive: huge outputs, loops, fan-out."""
    policy = policy or ValidationPolicy()
    base = normalize(text)
    signals = [f"budget:{name}" for name, pattern in _LOOP_RULES if pattern.search(base)]
    words = requested_words(text)
    if words > policy.max_requested_words:
        signals.append(f"limit:max_requested_words({int(words)}>{policy.max_requested_words})")
    return signals


def _char_signals(text: str) -> dict[str, int]:
    """Counts of each kind of suspicious character."""
    if text.isascii() and not _ASCII_CONTROL.search(text):
        return {}  # the common case, decided without a per-character loop
    counts: dict[str, int] = {}

    def bump(key: str) -> None:
        counts[key] = counts.get(key, 0) + 1

    for i, ch in enumerate(text):
        cp = ord(ch)
        if 0xD800 <= cp <= 0xDFFF:
            bump("encoding:surrogate")
        elif cp == 0xFFFD:
            bump("encoding:replacement_char")
        elif cp in TAG_RANGE:
            bump("unicode:tag")
        elif cp in BIDI_CONTROLS:
            bump("unicode:bidi_control")
        elif cp in INVISIBLE:
            bump("unicode:invisible")
        elif 0xFDD0 <= cp <= 0xFDEF or (cp & 0xFFFE) == 0xFFFE:
            bump("encoding:noncharacter")
        elif (
            unicodedata.category(ch) == "Cc"
            and ch not in _ALLOWED_CONTROLS
            # A carriage return before a newline is a Windows line ending, not a trick.
            and not (ch == "\r" and text[i + 1 : i + 2] == "\n")
        ):
            bump(f"control:U+{cp:04X}")
    return counts


def validate_input(text: str | bytes, policy: ValidationPolicy | None = None) -> SafetyVerdict:
    """Check encoding, characters, size and requested output size of one input.

    Args:
        text: The input; bytes are decoded as strict UTF-8 first.
        policy: Limits and actions; the defaults when None.

    Returns:
        A verdict of layer `validation`. Its signals name each limit exceeded
        (`limit:max_chars(40000>32000)`) and each class of bad character; when the only
        finding is invisible characters the action is `redact` and `redacted_text` is the
        input without them.
    """
    policy = policy or ValidationPolicy()
    if not policy.enabled:
        return allow("validation", "disabled")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            return SafetyVerdict(
                layer="validation",
                action="block",
                score=1.0,
                signals=["encoding:invalid_utf8"],
                reason=f"input is not valid UTF-8 (byte {exc.start})",
            )
    findings: list[tuple[str, Action]] = []
    if len(text) > policy.max_chars:
        findings.append((f"limit:max_chars({len(text)}>{policy.max_chars})", "block"))
    tokens = math.ceil(len(text) / policy.chars_per_token)
    if tokens > policy.max_tokens:
        findings.append((f"limit:max_tokens({tokens}>{policy.max_tokens})", "block"))
    longest = max((len(line) for line in text.split("\n")), default=0)
    if longest > policy.max_line_chars:
        findings.append((f"limit:max_line_chars({longest}>{policy.max_line_chars})", "block"))
    actions: dict[str, Action] = {
        "encoding": policy.control_action,
        "control": policy.control_action,
        "unicode:tag": policy.tag_action,
        "unicode:bidi_control": policy.bidi_action,
        "unicode:invisible": policy.invisible_action,
    }
    for signal, count in _char_signals(text).items():
        family = signal if signal.startswith("unicode:") else signal.split(":")[0]
        findings.append((f"{signal}(x{count})", actions[family]))
    # Budget rules read text, so skip them on input already refused for its size.
    if not findings or all(not s.startswith("limit:") for s, _ in findings):
        findings.extend((s, policy.budget_abuse_action) for s in detect_budget_abuse(text, policy))
    if not findings:
        return allow("validation", "within limits")
    action = most_severe(a for _, a in findings)
    redacted = None
    if action == "redact":
        redacted = "".join(ch for ch in text if ord(ch) not in INVISIBLE)
    decisive = [s for s, a in findings if a == action]
    return SafetyVerdict(
        layer="validation",
        action=action,
        score=1.0 if action in ("block", "escalate") else 0.5,
        signals=[s for s, _ in findings],
        redacted_text=redacted,
        reason="exceeded or violated: " + ", ".join(decisive),
    )
