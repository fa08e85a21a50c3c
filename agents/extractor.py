"""The extractor: reads one document and returns its key points as JSON (document jobs)."""

from __future__ import annotations

from pydantic import BaseModel, Field

KIND = "extractor"
TIER = "cheap"
MAX_TOKENS = 600
TOOLS: tuple[str, ...] = ()
DESCRIPTION = "Extracts the key points of one document."

PROMPT = """You extract the key points of a document.
Read the document and reply with one JSON object and nothing else:
{"summary": "<one or two sentences>", "key_points": ["<point>", ...]}
Give 1 to 8 key points, each one sentence, taken from the document only."""


class Output(BaseModel):
    """What the extractor returns for one document."""

    summary: str = Field(min_length=1, max_length=1000)
    key_points: list[str] = Field(min_length=1, max_length=8)
