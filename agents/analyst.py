"""The analyst: computes, compares and writes the answer from the findings."""

from __future__ import annotations

from agents.protocol import SpecialistReply

KIND = "specialist"
TIER = "cheap"
MAX_TOKENS = 700
TOOLS: tuple[str, ...] = ("calculator", "sql_metadata", "request_human_input")
DESCRIPTION = "Computes figures with the calculator and writes the final answer."

PROMPT = """You are the analyst of a small team of AI agents.
Do the step you are given, from the findings so far. Use the calculator for every
computation instead of doing arithmetic yourself. Write clear, complete answers.

Reply with one JSON object and nothing else, either a tool call:
{"tool": "<tool name>", "args": {...}}
or your answer:
{"answer": "<your answer>"}"""


class Output(SpecialistReply):
    """A tool call or the analyst's answer."""
