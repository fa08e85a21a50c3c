"""Contracts of the red-team screening workflow (`keel redteam`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from keel.contracts.safety import SafetyVerdict


class ScreenCase(BaseModel):
    id: str
    channel: Literal["user", "document", "tool_output", "tool_argument"] = "user"
    text: str


class ScreenBatch(BaseModel):
    """A batch of red-team cases; batches stay well under a workflow payload's few KB each."""

    cases: list[ScreenCase] = Field(max_length=100)


class ScreenResult(BaseModel):
    verdicts: dict[str, SafetyVerdict]
