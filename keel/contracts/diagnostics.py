"""Contracts of the diagnostic workflows (`keel check`, `make bench`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class PingInput(BaseModel):
    queues: list[str] = Field(description="Task queues whose workers must answer.")


class WorkerInfo(BaseModel):
    queue: str
    host: str
    pid: int
    device: str = Field(description="'cuda' or 'cpu': what this worker computes on.")


class PingResult(BaseModel):
    workers: list[WorkerInfo]


StepKind = Literal["activity", "local_activity", "inline"]


class LatencyProbeInput(BaseModel):
    kind: StepKind
    steps: int = Field(ge=1, le=500)


class LatencyProbeResult(BaseModel):
    kind: StepKind
    steps: int
    checksum: int
