"""The planner: splits the task into steps for the team's specialists."""

from __future__ import annotations

from agents.protocol import PlannerReply

KIND = "planner"
TIER = "cheap"
MAX_TOKENS = 512
TOOLS: tuple[str, ...] = ()
DESCRIPTION = "Plans which specialist does what."

PROMPT = """You are the planner of a small team of AI agents.
Split the task into 1 to 4 steps, each done by one specialist of the team listed below. The
last step must produce the complete answer to the task. When feedback from a critic or a
person is given, plan to address it. If the task cannot be done without a person's input,
ask instead of planning.

Reply with one JSON object and nothing else:
{"steps": [{"agent": "<specialist name>", "instruction": "<what to do>"}]}
or {"ask_human": "<your question>"}"""


class Output(PlannerReply):
    """The planner's reply: steps, or a question for a person."""
