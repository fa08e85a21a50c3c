"""The tool registry: every tool an agent may call, with its typed arguments. Data only.

How a tool runs is decided by its `runner`: an activity (named `agent_tool_<name>`), the
`RagQueryWorkflow` child run, or an escalation to a person. The workflow validates the
arguments against `args` before anything runs, so a model's mistake comes back to it as an
error message instead of failing an activity.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from keel.contracts.agents import (
    CalculatorArgs,
    HttpGetArgs,
    HumanInputArgs,
    RagSearchArgs,
    SqlMetadataArgs,
    ToolName,
)

Runner = Literal["activity", "child_workflow", "human"]


@dataclass(frozen=True)
class ToolSpec:
    """One tool: its name, what it is for, its argument model, and how it runs."""

    name: ToolName
    description: str
    args: type[BaseModel]
    runner: Runner

    @property
    def activity(self) -> str:
        """Name of the activity that runs it (for `runner == "activity"`)."""
        return f"agent_tool_{self.name}"

    def schema_line(self) -> str:
        """The tool as the model reads it: name, purpose, JSON schema of its arguments."""
        schema = self.args.model_json_schema()
        props = {
            name: {k: v for k, v in prop.items() if k in ("type", "anyOf", "enum", "format")}
            for name, prop in schema.get("properties", {}).items()
        }
        required = schema.get("required", [])
        return (
            f"- {self.name}: {self.description} "
            f"args: {json.dumps(props, separators=(',', ':'))} required: {required}"
        )


TOOLS: dict[str, ToolSpec] = {
    spec.name: spec
    for spec in (
        ToolSpec(
            "rag_search",
            "Answer a question from the organisation's documents, with citations.",
            RagSearchArgs,
            "child_workflow",
        ),
        ToolSpec(
            "calculator",
            # No worked example: a small local model pasted the old one ("(1200 * 0.15) +
            # 3**2") into its calls, extra term and all.
            "Evaluate one arithmetic expression written with the task's own numbers: "
            "+ - * / ** %, parentheses, sqrt, log, log10, abs, round(x, digits).",
            CalculatorArgs,
            "activity",
        ),
        ToolSpec(
            "sql_metadata",
            "List or count the organisation's documents by department, doc_type, date "
            "(YYYY-MM-DD) and title; count_by groups the counts.",
            SqlMetadataArgs,
            "activity",
        ),
        ToolSpec(
            "http_get",
            "Fetch a web page (only from the allowed hosts).",
            HttpGetArgs,
            "activity",
        ),
        ToolSpec(
            "request_human_input",
            "Stop and ask a person a question; use when only a person can decide.",
            HumanInputArgs,
            "human",
        ),
    )
}


def describe(names: list[str]) -> str:
    """The tool section of a specialist's system prompt."""
    lines = [TOOLS[n].schema_line() for n in names if n in TOOLS]
    return "Tools you may call:\n" + "\n".join(lines) if lines else "You have no tools."
