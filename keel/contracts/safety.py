"""Contracts of the safety layers in `keel/safety/`: verdicts, PII findings, tenant policy.

Verdicts travel through workflow history (the workflow decides what a `block` or an `escalate`
does), and a tenant's `SafetyPolicy` is stored and passed to the safety activities, so both
are durable contracts: add fields only with defaults, never rename or retype one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Layer = Literal[
    "validation",
    "injection",
    "pii",
    "moderation",
    "grounding",
    "tool",
    # The combined entry points report under their own name; their parts are in `checks`.
    "input",
    "output",
    "document",
]
Action = Literal["allow", "block", "redact", "escalate"]
# What the workflow should do with an ungrounded answer; a verdict carries it in `remedy`.
Remedy = Literal["regenerate", "not_enough_information", "escalate"]
PiiType = Literal[
    "EMAIL",
    "PHONE",
    "CARD",
    "IBAN",
    "SSN",
    "NATIONAL_ID",
    "SECRET",
    "ADDRESS",
]

# Most severe last: combining verdicts keeps the most severe action, so a `block` from any
# layer wins over a `redact` from another.
ACTION_SEVERITY: dict[Action, int] = {"allow": 0, "redact": 1, "escalate": 2, "block": 3}


class SafetyVerdict(BaseModel):
    """What one safety layer (or a combination of them) decided about one text.

    `score` is the layer's risk in [0, 1] (for grounding: 1 minus the supported share), so
    thresholds read the same way everywhere. `signals` name what matched, as `family:name`
    strings ("rule:ignore_previous", "limit:max_chars", "pii:EMAIL"), stable enough to count in
    dashboards. `redacted_text` is set when the action is `redact`: the text to use instead.
    """

    model_config = ConfigDict(frozen=True)

    layer: Layer
    action: Action
    score: float = Field(ge=0.0, le=1.0)
    signals: list[str] = Field(default_factory=list)
    redacted_text: str | None = None
    reason: str = ""
    remedy: Remedy | None = None
    checks: list[SafetyVerdict] = Field(
        default_factory=list, description="The per-layer verdicts a combined verdict was made of."
    )

    @property
    def blocked(self) -> bool:
        """True when the text must not pass as is (`block` or `escalate`)."""
        return self.action in ("block", "escalate")


class PiiFinding(BaseModel):
    """One piece of personal data or secret found in a text, and the placeholder replacing it."""

    model_config = ConfigDict(frozen=True)

    type: PiiType
    value: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    placeholder: str = Field(description="Typed and numbered, e.g. `[EMAIL_1]`.")


class ValidationPolicy(BaseModel):
    """Size limits and unicode hygiene for any text entering a model call.

    Tokens are estimated at `chars_per_token` characters each: cheap, provider-neutral, and
    pessimistic enough for English (real tokenizers give ~4 characters per token).
    """

    model_config = ConfigDict(frozen=True)

    enabled: bool = True
    max_chars: int = Field(default=32_000, gt=0)
    max_tokens: int = Field(default=8_000, gt=0)
    chars_per_token: float = Field(default=4.0, gt=0.0)
    max_line_chars: int = Field(default=10_000, gt=0)
    # A request for more output than this many words is refused before any model runs.
    max_requested_words: int = Field(default=5_000, gt=0)
    # Zero-width characters have honest uses (ZWJ in emoji, ZWNJ in Persian): strip, don't block.
    invisible_action: Action = "redact"
    # Bidi overrides reorder what a reviewer sees ("Trojan Source"); tag characters smuggle
    # ASCII invisibly. Neither has a use in a question to an assistant.
    bidi_action: Action = "block"
    tag_action: Action = "block"
    control_action: Action = "block"
    budget_abuse_action: Action = "block"


class InjectionPolicy(BaseModel):
    """Prompt-injection and jailbreak detection: rules, decoded payloads and a classifier."""

    model_config = ConfigDict(frozen=True)

    enabled: bool = True
    use_classifier: bool = True
    decode_payloads: bool = True
    # Risk at or above which user input is refused.
    threshold: float = Field(default=0.5, gt=0.0, le=1.0)
    # Retrieved chunks and tool outputs are long and rarely addressed to the model, so the
    # classifier (trained on short prompts) needs more evidence there.
    document_threshold: float = Field(default=0.5, gt=0.0, le=1.0)
    # The classifier alone blocks at these probabilities. It scores P 0.99 / R 0.92 at 0.5 on
    # its own held-out test split, but out of domain (the red-team benign set: role-play,
    # "act as", security questions) 0.5 flags ~16% of benign texts; 0.8 flags ~5%.
    classifier_threshold: float = Field(default=0.8, gt=0.0, le=1.0)
    document_classifier_threshold: float = Field(default=0.95, gt=0.0, le=1.0)
    action: Action = "block"
    document_action: Action = "block"


def _all_pii_types() -> list[PiiType]:
    return ["EMAIL", "PHONE", "CARD", "IBAN", "SSN", "NATIONAL_ID", "SECRET", "ADDRESS"]


class PiiPolicy(BaseModel):
    """PII detection: which types to look for, and what to do with them in user input."""

    model_config = ConfigDict(frozen=True)

    enabled: bool = True
    types: list[PiiType] = Field(default_factory=_all_pii_types)
    # Redact before a provider sees it; the restore map puts the user's own values back.
    input_action: Action = "redact"


class ModerationPolicy(BaseModel):
    """Output moderation (leaks, secrets, foreign PII, forbidden data) and harmful requests."""

    model_config = ConfigDict(frozen=True)

    enabled: bool = True
    # A leak is this share of the system prompt's word n-grams found in the answer.
    leak_ngram: int = Field(default=5, ge=2)
    leak_threshold: float = Field(default=0.2, gt=0.0, le=1.0)
    leak_action: Action = "block"
    secret_action: Action = "block"
    forbidden_action: Action = "block"
    # Strings no answer for this tenant may contain: other tenants' ids and names, codenames.
    forbidden_terms: list[str] = Field(default_factory=list)
    foreign_pii_action: Action = "redact"
    # When true, PII quoted from the retrieved context (the tenant's own documents) may pass.
    allow_context_pii: bool = False
    harmful_input_action: Action = "block"
    harmful_output_action: Action = "block"


class GroundingPolicy(BaseModel):
    """How much of an answer must be supported by the retrieved context."""

    model_config = ConfigDict(frozen=True)

    enabled: bool = True
    # A sentence is supported when this share of its content words occurs in the context.
    sentence_support: float = Field(default=0.6, gt=0.0, le=1.0)
    # An answer is grounded when this share of its sentences is supported.
    threshold: float = Field(default=0.7, gt=0.0, le=1.0)
    ungrounded_remedy: Remedy = "regenerate"


class ToolPolicy(BaseModel):
    """Screening of tool-call arguments: SQL, shell, URL (SSRF) and markup payloads."""

    model_config = ConfigDict(frozen=True)

    enabled: bool = True
    action: Action = "block"
    # When non-empty, an HTTP tool may only reach these hosts (and their subdomains).
    allowed_hosts: list[str] = Field(default_factory=list)
    # Loopback, link-local (cloud metadata), private ranges and `.internal` names.
    block_private_network: bool = True
    # Statements that change data (DELETE, UPDATE, DROP...) in an argument of a read-only tool.
    block_sql_writes: bool = True


class SafetyPolicy(BaseModel):
    """One tenant's safety settings: which layers run, their thresholds and their actions.

    The defaults are what a tenant gets without configuring anything: every layer on, attacks
    blocked, PII in input redacted (and restorable for the user), ungrounded answers
    regenerated.
    """

    model_config = ConfigDict(frozen=True)

    validation: ValidationPolicy = Field(default_factory=ValidationPolicy)
    injection: InjectionPolicy = Field(default_factory=InjectionPolicy)
    pii: PiiPolicy = Field(default_factory=PiiPolicy)
    moderation: ModerationPolicy = Field(default_factory=ModerationPolicy)
    grounding: GroundingPolicy = Field(default_factory=GroundingPolicy)
    tools: ToolPolicy = Field(default_factory=ToolPolicy)
