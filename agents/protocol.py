"""The shapes agents answer in, and how a reply is read back: pure functions, no I/O.

Models answer in JSON. A reply that is not the JSON its role asks for is never a crash:
`parse_reply` says what was wrong, and each role has a conservative reading of free text
(a planner's text becomes a one-step plan, a specialist's text is its answer, a critic's
text is a rejection, because an unreadable verdict must not pass as an acceptance).
"""

from __future__ import annotations

import json
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, ValidationError

M = TypeVar("M", bound=BaseModel)


class PlannedStep(BaseModel):
    """One step of a plan as the planner writes it."""

    agent: str = Field(min_length=1, max_length=40)
    instruction: str = Field(min_length=1, max_length=4000)


class PlannerReply(BaseModel):
    """A plan: which specialists to run, in order; or a question for a person."""

    steps: list[PlannedStep] = Field(default_factory=list, max_length=8)
    ask_human: str | None = Field(default=None, max_length=2000)


class SpecialistReply(BaseModel):
    """Either a tool call (`tool` + `args`) or an `answer`."""

    tool: str | None = Field(default=None, max_length=60)
    args: dict[str, Any] = Field(default_factory=dict)
    answer: str | None = Field(default=None, max_length=20_000)


class CriticReply(BaseModel):
    """The critic's verdict on a draft."""

    verdict: Literal["accept", "reject"]
    feedback: str = Field(default="", max_length=4000)


def extract_json(text: str) -> Any | None:
    """The first JSON object in `text` (bare, or inside a ```json fence); None if there is none.

    Models wrap JSON in prose or fences; the outermost `{...}` span is tried, then each
    `{` from the left, so trailing prose does not spoil an otherwise valid object.
    """
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.strip("`")
        if stripped.lower().startswith("json"):
            stripped = stripped[4:]
    end = stripped.rfind("}")
    start = stripped.find("{")
    while 0 <= start < end:
        try:
            value = json.loads(stripped[start : end + 1])
        except json.JSONDecodeError:
            start = stripped.find("{", start + 1)
            continue
        return value if isinstance(value, dict) else None
    return None


def parse_reply(text: str, model: type[M]) -> tuple[M | None, str]:
    """Read `text` as `model`; on failure return None and a short reason for the model."""
    value = extract_json(text)
    if value is None:
        return None, "the reply holds no JSON object"
    try:
        return model.model_validate(value), ""
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'reply'}: {e['msg']}" for e in exc.errors()
        )
        return None, problems[:500]


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, marked when cut."""
    return text if len(text) <= limit else text[: max(limit - 15, 0)] + " ...[truncated]"


def one_line(text: str, limit: int = 200) -> str:
    """`text` on one line, at most `limit` characters: for turn summaries."""
    return clip(" ".join(text.split()), limit)
