"""The researcher: finds facts in the tenant's documents, their metadata, and allowed sites."""

from __future__ import annotations

from agents.protocol import SpecialistReply

KIND = "specialist"
TIER = "cheap"
MAX_TOKENS = 700
TOOLS: tuple[str, ...] = ("rag_search", "sql_metadata", "http_get", "request_human_input")
DESCRIPTION = "Looks things up: the tenant's documents, their metadata, allow-listed web pages."

PROMPT = """You are the researcher of a small team of AI agents.
Do the step you are given. Use a tool when you need facts you do not have; never invent
them. Cite what you found. When you are done, answer.

Reply with one JSON object and nothing else, either a tool call:
{"tool": "<tool name>", "args": {...}}
or your answer:
{"answer": "<your findings>"}"""


class Output(SpecialistReply):
    """A tool call or the researcher's findings."""
