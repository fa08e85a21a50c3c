"""The combined entry points: everything a workflow needs to ask about one text.

`check_input` runs before a request reaches any model, `check_document` on every retrieved
chunk or tool output before it enters a prompt, `check_output` on an answer before anyone
sees it. Each returns one verdict whose `checks` hold the per-layer verdicts, so the
workflow decides on `action` and the history still shows which layer said what.
"""

from __future__ import annotations

from collections.abc import Sequence

from keel.contracts.safety import SafetyPolicy, SafetyVerdict
from keel.safety.common import combine
from keel.safety.grounding import check_grounding
from keel.safety.injection import Channel, detect_injection
from keel.safety.moderation import moderate_input, moderate_output
from keel.safety.pii import detect_pii
from keel.safety.semantic import semantic_verdict
from keel.safety.validation import validate_input


def check_input(
    text: str, policy: SafetyPolicy | None = None, *, semantic: bool = True
) -> SafetyVerdict:
    """Validate, scan for injection and harmful requests, and redact PII in user input.

    Args:
        text: The user's input.
        policy: The tenant's policy; the defaults when None.
        semantic: Also ask the semantic classifier (`semantic.py`) what the input means; off only
            to measure the other layers alone (its training script does).

    Returns:
        A verdict of layer `input`. `redacted_text`, when set, is what to send on (invisible
        characters stripped, PII replaced by placeholders); keep the PII findings' restore map
        (`pii.restore_map`) to put the user's own values back into the answer.
    """
    policy = policy or SafetyPolicy()
    validation = validate_input(text, policy.validation)
    # An oversized input is refused on its size; scanning it would cost what the limit saves.
    if validation.action == "block" and any(s.startswith("limit:max_") for s in validation.signals):
        return combine("input", [validation])
    cleaned = validation.redacted_text or text
    checks = [
        validation,
        detect_injection(cleaned, policy.injection, channel="user"),
        moderate_input(cleaned, policy.moderation),
        detect_pii(cleaned, policy.pii),
    ]
    meaning = semantic_verdict(cleaned, policy) if semantic else None
    if meaning is not None:
        checks.append(meaning)
    return combine("input", checks)


def check_document(
    text: str, policy: SafetyPolicy | None = None, *, channel: Channel = "document"
) -> SafetyVerdict:
    """Screen a retrieved chunk or a tool output for indirect prompt injection.

    Character hygiene (tag characters, bidi overrides) is checked too: hidden text in a web
    page or PDF is the usual carrier of an indirect injection.
    """
    policy = policy or SafetyPolicy()
    validation = validate_input(text, policy.validation)
    cleaned = validation.redacted_text or text
    return combine(
        "document", [validation, detect_injection(cleaned, policy.injection, channel=channel)]
    )


def check_output(
    answer: str,
    *,
    user_input: str = "",
    system_prompt: str = "",
    context: str | None = None,
    forbidden: Sequence[str] = (),
    policy: SafetyPolicy | None = None,
) -> SafetyVerdict:
    """Moderate an answer and, when it was generated from retrieved context, check grounding.

    Args:
        answer: The model's answer.
        user_input: The user's own input (their PII and secrets may be echoed back).
        system_prompt: The system prompt the answer must not leak.
        context: The retrieved context; None for answers not generated from retrieval, which
            skips the grounding check.
        forbidden: Other tenants' names and ids the answer must not contain.
        policy: The tenant's policy; the defaults when None.

    Returns:
        A verdict of layer `output`; `remedy` is set when the grounding check failed.
    """
    policy = policy or SafetyPolicy()
    checks = [
        moderate_output(
            answer,
            user_input=user_input,
            system_prompt=system_prompt,
            context=context or "",
            forbidden=forbidden,
            policy=policy.moderation,
        )
    ]
    if context is not None:
        checks.append(check_grounding(answer, context, policy.grounding))
    return combine("output", checks)
