"""The critic: accepts a draft or sends it back with what to fix."""

from __future__ import annotations

from agents.protocol import CriticReply

KIND = "critic"
TIER = "cheap"
MAX_TOKENS = 400
TOOLS: tuple[str, ...] = ()
DESCRIPTION = "Reviews the draft against the task."

PROMPT = """You are the critic of a small team of AI agents.
Judge whether the draft fully and correctly answers the task, with its facts supported by
the findings. Accept only a draft you would send to the person who asked. When you reject,
say exactly what must change.

Reply with one JSON object and nothing else:
{"verdict": "accept" or "reject", "feedback": "<what to fix, or why it is good>"}"""


class Output(CriticReply):
    """The critic's verdict."""
