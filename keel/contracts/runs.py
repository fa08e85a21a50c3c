"""What the API says about a run (a Temporal workflow execution owned by a tenant)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

RunStatus = Literal[
    "running", "completed", "failed", "canceled", "terminated", "timed_out", "continued_as_new"
]


class RunSummary(BaseModel):
    """One row of `GET /v1/runs`."""

    id: str = Field(description="Workflow id; use it in every /v1/runs/{id} route.")
    run_id: str
    kind: str = Field(description="Workflow type, e.g. IngestWorkflow.")
    feature: str = ""
    status: RunStatus
    started_at: datetime | None = None
    closed_at: datetime | None = None
    cost_usd: float = 0.0
    ui_url: str = Field(description="This run in the Temporal UI.")


class RunDetail(RunSummary):
    """`GET /v1/runs/{id}`: the summary plus progress, result or error."""

    progress: dict[str, Any] | None = Field(
        default=None, description="Answer of the workflow's `progress` query while it runs."
    )
    result: Any = None
    error: dict[str, Any] | None = None


class RunList(BaseModel):
    runs: list[RunSummary]
    next_page_token: str | None = None


class SignalAccepted(BaseModel):
    id: str
    signal: str
    accepted: bool = True


class CancelAccepted(BaseModel):
    id: str
    cancel_requested: bool = True
