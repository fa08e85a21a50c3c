"""Pure decisions of the agent loop: which bound stops a run, when to call a person, whether
a tool call repeats. Workflow code calls these with values already in history, so replays
decide the same way.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from keel.contracts.agents import AgentLimits, LoopState
from keel.contracts.guards import RunBudget

Bound = Literal["max_turns", "deadline"]
Repeat = Literal["new", "repeat", "loop"]


def bound_reached(state: LoopState, limits: AgentLimits, now: datetime) -> Bound | None:
    """The bound that stops the run before its next turn, if any.

    The deadline counts active time only: time spent waiting for a person is subtracted,
    because a 24-hour escalation must not use up a one-hour working budget.
    """
    if state.turns >= limits.max_turns:
        return "max_turns"
    if state.started_at is not None:
        active = (now - state.started_at).total_seconds() - state.waited_seconds
        if active >= limits.deadline_seconds:
            return "deadline"
    return None


def budget_needs_person(state: LoopState, limits: AgentLimits, budget: RunBudget) -> bool:
    """True once the run has spent `escalate_budget_ratio` of its USD cap (asked once)."""
    if state.budget_escalated or limits.escalate_budget_ratio is None or budget.max_usd is None:
        return False
    return state.budget.spent_usd >= limits.escalate_budget_ratio * budget.max_usd


def rejections_need_person(state: LoopState, limits: AgentLimits) -> bool:
    """True when the critic has rejected `escalate_after_rejections` drafts in a row."""
    threshold = limits.escalate_after_rejections
    return threshold > 0 and state.rejections >= threshold


def tool_signature(tool: str, args: dict[str, Any]) -> str:
    """A canonical string for a tool call: same tool, same arguments, same signature."""
    return tool + ":" + json.dumps(args, sort_keys=True, separators=(",", ":"), default=str)


def classify_repeat(signature: str, earlier: list[str]) -> Repeat:
    """`new`, a first `repeat` (the model is told and may change course), or a `loop`
    (the same call a third time: the step is stopped)."""
    seen = earlier.count(signature)
    if seen == 0:
        return "new"
    return "repeat" if seen == 1 else "loop"
