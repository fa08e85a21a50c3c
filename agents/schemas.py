"""JSON schemas of the agents' replies, sent with each agent call: pure functions, no I/O.

A provider that can hold its sampler to a schema (the local llama.cpp model) always writes a
reply `protocol.parse_reply` can read; hosted providers ignore the schema and follow the
prompt. The schemas are flat (no `$ref`) because llama.cpp compiles them into a grammar, and
every free-text field has a `maxLength`, so a small model that starts repeating itself is cut
off instead of running to `max_tokens`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from agents.tools import TOOLS
from keel.contracts.agents import RoleSpec, TeamSpec

Schema = dict[str, Any]

# Characters, not tokens: a plan step or a verdict's reason, an answer, a document summary.
SHORT_TEXT = 400
ANSWER_TEXT = 1500
MAX_PLAN_STEPS = 4
# What a tool's argument schema may keep from pydantic's: the keywords llama.cpp enforces.
_KEPT = ("type", "enum", "const", "format", "minimum", "maximum", "minLength", "maxLength")


def text(max_length: int) -> Schema:
    """A string of at most `max_length` characters."""
    return {"type": "string", "maxLength": max_length}


def obj(properties: Schema, required: list[str] | None = None) -> Schema:
    """An object with exactly these properties, in this order (the order the model writes
    them in); all required unless `required` says otherwise."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


def planner_schema(specialists: list[str]) -> Schema:
    """`{"steps": [{"agent", "instruction"}, ...]}` naming only the team's specialists, or
    `{"ask_human": ...}`."""
    agent = {"type": "string", "enum": specialists} if specialists else text(40)
    step = obj({"agent": agent, "instruction": text(SHORT_TEXT)})
    steps = {"type": "array", "items": step, "minItems": 1, "maxItems": MAX_PLAN_STEPS}
    return {"anyOf": [obj({"steps": steps}), obj({"ask_human": text(SHORT_TEXT)})]}


def critic_schema() -> Schema:
    """`{"feedback", "verdict"}`: the reasons come first, so the model has written them down
    before it decides (the reply model reads the keys in any order)."""
    return obj(
        {"feedback": text(SHORT_TEXT), "verdict": {"type": "string", "enum": ["accept", "reject"]}}
    )


def args_schema(model: type[BaseModel]) -> Schema:
    """A tool's argument model as a flat schema: optional fields stay optional (their `null`
    alternative dropped: leaving a field out means the same), every string capped."""
    source = model.model_json_schema()
    properties: Schema = {}
    for name, prop in source.get("properties", {}).items():
        options = [p for p in prop.get("anyOf", [prop]) if p.get("type") != "null"]
        kept = {k: v for k, v in (options[0] if options else {}).items() if k in _KEPT}
        if kept.get("type", "string") == "string" and "enum" not in kept:
            kept["type"] = "string"
            kept["maxLength"] = min(int(kept.get("maxLength", SHORT_TEXT)), SHORT_TEXT)
        properties[name] = kept
    return obj(properties, required=list(source.get("required", [])))


def specialist_schema(tools: list[str], *, tool_first: bool = False) -> Schema:
    """One of `{"tool": <name>, "args": <that tool's arguments>}` per tool, or `{"answer"}`.

    `tool_first` leaves out the answer (and asking a person) when the role has another tool:
    the first turn of a step must look something up or compute it. Measured on the local
    1.5B model, specialists free to answer never called a tool and made facts up.
    """
    names = [name for name in tools if name in TOOLS]
    working = [name for name in names if TOOLS[name].runner != "human"]
    forced = tool_first and bool(working)
    options = [
        obj({"tool": {"type": "string", "const": name}, "args": args_schema(TOOLS[name].args)})
        for name in (working if forced else names)
    ]
    if not forced:
        options.append(obj({"answer": text(ANSWER_TEXT)}))
    return options[0] if len(options) == 1 else {"anyOf": options}


def extractor_schema() -> Schema:
    """`{"summary", "key_points": [1..8]}` (the extractor role of document jobs)."""
    points = {"type": "array", "items": text(SHORT_TEXT), "minItems": 1, "maxItems": 8}
    return obj({"summary": text(SHORT_TEXT), "key_points": points})


def reply_schema(
    role: RoleSpec, team: TeamSpec | None = None, *, tool_first: bool = False
) -> Schema:
    """The schema of `role`'s reply, by its kind (a planner's names `team`'s specialists;
    `tool_first`: a specialist's first turn of a step, see `specialist_schema`)."""
    if role.kind == "planner":
        return planner_schema([s.name for s in team.specialists] if team else [])
    if role.kind == "critic":
        return critic_schema()
    if role.kind == "extractor":
        return extractor_schema()
    return specialist_schema(list(role.tools), tool_first=tool_first)
