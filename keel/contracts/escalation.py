"""Contracts of a team run's escalations: the question a person is asked (`Escalation`), the
four decisions the run accepts as validated updates, and what was decided (`Decision`).
Everything here travels through workflow history: fields are only ever added, with defaults.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field

EscalationReason = Literal["critic_rejections", "safety", "budget_threshold", "agent_request"]
DecisionAction = Literal["approve", "reject", "edit", "take_over"]
TimeoutAction = Literal["approve", "reject"]


class Escalation(BaseModel):
    """A question waiting for a person: why, what is asked, the draft at stake, until when."""

    id: str
    reason: EscalationReason
    question: str
    draft: str = ""
    detail: str = ""
    opened_at: AwareDatetime
    expires_at: AwareDatetime
    on_timeout: TimeoutAction = "reject"


class ApproveInput(BaseModel):
    """Update `approve`: publish the draft (draft escalations) or let the run go on."""

    escalation_id: str = Field(default="", description="Empty: whichever is pending.")
    note: str = Field(default="", max_length=4000)
    by: str = Field(default="", max_length=200)


class RejectInput(BaseModel):
    """Update `reject`: stop the run without an answer."""

    escalation_id: str = ""
    reason: str = Field(default="", max_length=4000)
    by: str = Field(default="", max_length=200)


class EditInput(BaseModel):
    """Update `edit`: replace the draft (it goes back to the critic) and/or the instructions
    (the team plans again with them)."""

    escalation_id: str = ""
    draft: str | None = Field(default=None, max_length=20_000)
    instructions: str | None = Field(default=None, max_length=4000)
    by: str = Field(default="", max_length=200)


class TakeOverInput(BaseModel):
    """Update `take_over`: a person supplies the final answer; the agents stop."""

    escalation_id: str = ""
    answer: str = Field(default="", max_length=20_000)
    by: str = Field(default="", max_length=200)


# The escalation verbs: the API sends them to these workflows as Temporal updates, each with
# its own input model, so a decision nobody waits for is refused by the workflow's validator.
DECISION_INPUTS: dict[str, type[BaseModel]] = {
    "approve": ApproveInput,
    "reject": RejectInput,
    "edit": EditInput,
    "take_over": TakeOverInput,
}
ESCALATION_WORKFLOWS: frozenset[str] = frozenset({"AgentTeamWorkflow"})


class Decision(BaseModel):
    """How an escalation was resolved (by a person, or by the timeout's safe default)."""

    escalation_id: str
    reason: EscalationReason
    action: DecisionAction
    by: str = ""
    text: str = Field(default="", description="The note, reason, edited text or answer.")
    instructions: str = ""
    timed_out: bool = False
    at: AwareDatetime | None = None


class EscalationAck(BaseModel):
    """What an escalation update returns."""

    escalation_id: str
    action: DecisionAction
    accepted: bool = True
