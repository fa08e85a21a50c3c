"""Contracts of the agent team loop: `AgentTeamWorkflow`, its tools and its escalations
(`DocumentJobWorkflow`'s are in `keel.contracts.documents`).

A team is declared (`TeamDecl`, by name in `agents/teams.py` or posted as data), resolved by
the API into a `TeamSpec` whose roles carry their prompts, and frozen into the run's input,
so a later change to a prompt never reaches a run already under way. Transcripts live in
Postgres; a run carries only counts, summaries and the bounded state of the current round
(`LoopState`), also across continue-as-new. Everything here travels through workflow
history: fields are only ever added, with defaults.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from keel.contracts.escalation import Decision, Escalation, TimeoutAction
from keel.contracts.gateway import CallContext, GatewayConfig
from keel.contracts.guards import BudgetState, Tier
from keel.contracts.llm import ChatMessage
from keel.contracts.rag import RagConfig

RoleKind = Literal["planner", "specialist", "critic", "extractor"]
ToolName = Literal["rag_search", "calculator", "sql_metadata", "http_get", "request_human_input"]
Phase = Literal["plan", "specialist", "critic", "done"]
TurnKind = Literal["llm", "tool", "human", "system"]
AgentRunStatus = Literal[
    "accepted",  # the critic accepted the draft
    "approved",  # a person approved the draft
    "taken_over",  # a person supplied the answer
    "rejected",  # a person rejected the run
    "escalation_expired",  # nobody answered; the safe default stopped the run
    "budget_exhausted",
    "tenant_budget_exhausted",
    "max_turns",
    "max_tool_calls",
    "deadline",
    "failed",  # no model in the chain could answer
]


# --- declaring a team ----------------------------------------------------------------------


class RoleSpec(BaseModel):
    """One agent role as a run sees it: built from an `agents/<role>.py` module."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    kind: RoleKind
    prompt: str = Field(min_length=1, max_length=8000)
    tools: list[ToolName] = Field(default_factory=list)
    tier: Tier = "cheap"
    max_tokens: int = Field(default=512, gt=0, le=8192)
    description: str = ""


class AgentLimits(BaseModel):
    """The bounds of one run. Every one is checked in workflow code before the next step."""

    model_config = ConfigDict(frozen=True)

    max_turns: int = Field(default=40, ge=1, le=10_000, description="Agent model calls.")
    max_tool_calls: int = Field(default=40, ge=0, le=10_000)
    max_tool_rounds_per_step: int = Field(
        default=4, ge=1, le=20, description="Tool calls one specialist may make for one step."
    )
    deadline_seconds: float = Field(
        default=3600.0, gt=0, description="Wall clock of active work; escalation waits excluded."
    )
    escalate_after_rejections: int = Field(
        default=3, ge=0, description="Consecutive critic rejections that call a person; 0: never."
    )
    escalate_budget_ratio: float | None = Field(
        default=0.8, gt=0.0, le=1.0, description="Share of the run's USD cap that calls a person."
    )
    escalation_timeout_seconds: float = Field(default=86_400.0, gt=0)
    on_escalation_timeout: TimeoutAction = Field(
        default="reject", description="The safe default: an unanswered escalation stops the run."
    )
    safety_check: bool = True
    history_event_budget: int = Field(
        default=4_000, ge=100, description="Continue-as-new once the history is this long."
    )


class TeamDecl(BaseModel):
    """A team as declared: roles by name, and its limits. No code."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$")
    planner: str
    specialists: list[str] = Field(min_length=1, max_length=8)
    critic: str
    limits: AgentLimits = Field(default_factory=AgentLimits)


class TeamSpec(BaseModel):
    """A resolved team: the declaration's roles with their prompts, frozen into the run."""

    model_config = ConfigDict(frozen=True)

    name: str
    planner: RoleSpec
    specialists: list[RoleSpec] = Field(min_length=1)
    critic: RoleSpec
    limits: AgentLimits = Field(default_factory=AgentLimits)

    @model_validator(mode="after")
    def _kinds(self) -> TeamSpec:
        if self.planner.kind != "planner" or self.critic.kind != "critic":
            raise ValueError("the planner and critic roles must be of kind planner and critic")
        if any(s.kind != "specialist" for s in self.specialists):
            raise ValueError("every specialist role must be of kind specialist")
        return self

    def specialist(self, name: str) -> RoleSpec | None:
        """The specialist called `name`, if the team has one."""
        return next((s for s in self.specialists if s.name == name), None)


class ToolConfig(BaseModel):
    """Tool settings frozen into a run (from `Settings.agents`)."""

    model_config = ConfigDict(frozen=True)

    http_allow_hosts: list[str] = Field(
        default_factory=list, description="`host` or `host:port`; nothing else is fetched."
    )
    http_private_hosts: list[str] = Field(
        default_factory=list,
        description="Allowed hosts that may resolve to loopback/private addresses (an "
        "intranet); every other host must resolve to public addresses only. Cloud metadata "
        "(link-local) is never fetched.",
    )
    http_timeout_seconds: float = Field(default=10.0, gt=0)
    http_max_bytes: int = Field(default=65_536, gt=0)
    rag_task_queue: str = Field(default="", description="Empty: the run's own task queue.")
    rag_timeout_seconds: float = Field(default=120.0, gt=0)
    output_chars: int = Field(
        default=2_000, ge=100, description="Tool output shown to the model, at most."
    )


class AgentSettings(BaseModel):
    """`Settings.agents` (`KEEL_AGENTS__...`): defaults the API freezes into each agent run."""

    model_config = ConfigDict(frozen=True)

    default_team: str = "research"
    http_allow_hosts: list[str] = Field(default_factory=list)
    http_private_hosts: list[str] = Field(default_factory=list)
    http_timeout_seconds: float = Field(default=10.0, gt=0)
    rag_task_queue: str = ""
    escalation_timeout_seconds: float = Field(default=86_400.0, gt=0)
    on_escalation_timeout: TimeoutAction = "reject"
    document_concurrency: int = Field(default=4, ge=1, le=64)


# --- tools ---------------------------------------------------------------------------------


class RagSearchArgs(BaseModel):
    """`rag_search`: ask the tenant's documents (a `RagQueryWorkflow` child run)."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=2000)


class CalculatorArgs(BaseModel):
    """`calculator`: an arithmetic expression (numbers, + - * / // % **, a few functions)."""

    model_config = ConfigDict(extra="forbid")

    expression: str = Field(min_length=1, max_length=500)


class SqlMetadataArgs(BaseModel):
    """`sql_metadata`: a fixed, parameterised query over the tenant's document metadata."""

    model_config = ConfigDict(extra="forbid")

    department: str | None = Field(default=None, max_length=100)
    doc_type: str | None = Field(default=None, max_length=100)
    date_from: date | None = None
    date_to: date | None = None
    title_contains: str | None = Field(default=None, max_length=200)
    count_by: Literal["department", "doc_type", "month"] | None = None
    limit: int = Field(default=20, ge=1, le=100)


class HttpGetArgs(BaseModel):
    """`http_get`: fetch a URL on the allow-list."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=8, max_length=2000)


class HumanInputArgs(BaseModel):
    """`request_human_input`: stop and ask a person."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=2000)


class ToolRequest(BaseModel):
    """Input of a tool activity: whose tool call, with which (validated) arguments."""

    tenant: str
    tenant_id: str
    tool: ToolName
    args: dict[str, Any] = Field(default_factory=dict)
    config: ToolConfig = Field(default_factory=ToolConfig)


class ToolOutput(BaseModel):
    """What a tool said; `ok=False` outputs go back to the model as an error message."""

    ok: bool
    text: str
    data: dict[str, Any] = Field(default_factory=dict)


class PlanStep(BaseModel):
    """One step of a plan: which specialist does what."""

    agent: str = Field(max_length=40)
    instruction: str = Field(max_length=4000)


class Finding(BaseModel):
    """What a specialist produced for a step (truncated: the full text is in the transcript)."""

    agent: str
    instruction: str = ""
    text: str
    stopped: str = Field(default="", description="Why the step was cut short, if it was.")


class TurnRecord(BaseModel):
    """One turn (agent model call, tool call or human decision), as the progress query shows."""

    n: int
    round: int
    role: str
    kind: TurnKind
    summary: str = Field(max_length=300)
    model: str = ""
    cache_layer: str = ""
    cost_usd: float = 0.0
    tool: str = ""
    ok: bool = True
    at: AwareDatetime | None = None


class LoopState(BaseModel):
    """Everything a run carries across continue-as-new: counts, summaries, the current round.

    Bounded by construction: findings and notes are truncated, recent turns capped, and the
    specialist's tool exchange holds at most `max_tool_rounds_per_step` truncated outputs.
    """

    phase: Phase = "plan"
    round: int = 0
    turns: int = 0
    tool_calls: int = 0
    llm_calls: int = 0
    rejections: int = 0
    escalations: int = 0
    budget_escalated: bool = False
    plan: list[PlanStep] = Field(default_factory=list)
    step: int = 0
    scratch: list[ChatMessage] = Field(default_factory=list)
    step_tool_calls: list[str] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    draft: str = ""
    feedback: str = ""
    instructions: str = ""
    history: list[str] = Field(
        default_factory=list, description="One-line summaries of earlier rounds (latest kept)."
    )
    budget: BudgetState = Field(default_factory=BudgetState)
    started_at: AwareDatetime | None = None
    waited_seconds: float = Field(default=0.0, description="Time spent waiting for people.")
    transcript_seq: int = 0
    continued: int = 0
    recent: list[TurnRecord] = Field(default_factory=list)
    decisions: list[Decision] = Field(default_factory=list)


class AgentRunRequest(BaseModel):
    """Input of `AgentTeamWorkflow`."""

    task: str = Field(min_length=1, max_length=8000)
    team: TeamSpec
    context: CallContext
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    rag: RagConfig = Field(
        default_factory=RagConfig,
        description="The deployment's RAG settings, for the `rag_search` tool's child runs.",
    )
    tools: ToolConfig = Field(default_factory=ToolConfig)
    carry: LoopState | None = Field(default=None, description="Set by continue-as-new only.")


class AgentRunResult(BaseModel):
    """What `AgentTeamWorkflow` returns."""

    status: AgentRunStatus
    answer: str = Field(default="", description="Set when accepted, approved or taken over.")
    draft: str = Field(default="", description="The last draft, whatever the outcome.")
    detail: str = ""
    rounds: int = 0
    turns: int = 0
    llm_calls: int = 0
    tool_calls: int = 0
    escalations: int = 0
    continued: int = Field(default=0, description="Times the run continued as new.")
    cost_usd: float = 0.0
    tokens: int = 0
    transcript_id: str = ""
    decisions: list[Decision] = Field(default_factory=list)


class AgentProgress(BaseModel):
    """The `progress` query: what `GET /v1/runs/{id}` shows while the run is under way."""

    status: Literal["running", "awaiting_human", "finished"]
    team: str
    phase: Phase
    round: int
    turns: int
    llm_calls: int
    tool_calls: int
    rejections: int
    escalations: int
    cost_usd: float
    tokens: int
    continued: int
    transcript_id: str
    draft: str = ""
    pending_escalation: Escalation | None = None
    recent_turns: list[TurnRecord] = Field(default_factory=list)
    limits: AgentLimits


# --- transcript and safety -----------------------------------------------------------------


class TranscriptEntry(BaseModel):
    """One transcript row: the full text of a turn, kept in Postgres, not in history."""

    seq: int
    round: int
    turn: int
    role: str
    kind: TurnKind
    content: str
    data: dict[str, Any] = Field(default_factory=dict)


class TranscriptAppend(BaseModel):
    transcript_id: str
    tenant_id: str
    run_id: str = ""
    entries: list[TranscriptEntry]


class SafetyCheckInput(BaseModel):
    tenant: str
    tenant_id: str
    text: str
    task: str = ""


class SafetyFlag(BaseModel):
    """The safety hook's answer: `flagged` calls a person."""

    flagged: bool
    reason: str = ""
    signals: list[str] = Field(default_factory=list)
    checker: str = ""
