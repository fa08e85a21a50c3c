"""Contracts of document ingestion (shared by the store, the ingest workflows and the API).

Everything here travels through workflow history, so nothing holds a document: a job is
named by its id, a batch by a range of staged file ids, and stages report counts. The bytes,
texts and vectors live in the staging tables (migration 0003).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

# Metadata fields a job may set for all its documents (CLI flags, the API's `metadata`).
JOB_METADATA_FIELDS = ("title", "date", "department", "doc_type")


class UpsertOutcome(BaseModel):
    """What storing one document did."""

    document_id: str
    status: Literal["created", "updated", "unchanged"]
    version: int
    chunks_written: int


class IngestOptions(BaseModel):
    """How a job cuts, embeds and paces its work; frozen into the job's input at start.

    Attributes:
        target_tokens: Most tokens in a chunk (the embedder's word pieces).
        overlap_tokens: Tokens a chunk repeats from the previous one, at most.
        max_file_bytes: Larger files fail with a per-file `too_large` error.
        embedder: Embedder kind (settings.embedder); part of each document's content hash,
            so switching embedders re-embeds instead of mixing vector spaces.
        metadata: Fields set on every document of the job; they override what documents
            declare (title, date, department, doc_type).
        batch_files: Files per child workflow. Each batch costs ~0.2 CPU-s of orchestration
            (a child workflow, four activities, their transactions) whatever its size: at 64
            two-chunk files ~1.5 ms a chunk against the model's ~140, at 32 twice that.
        max_concurrent_batches: Child workflows in flight at once.
        embed_chunks: Chunks per embedding call (one heartbeat, one checkpoint each).
        heartbeat_seconds: Heartbeat timeout of the batch activities: how fast a dead
            worker's work moves to a live one.
        history_event_budget: Continue-as-new once the job's history passes this many
            events; None means `workflows.policies.HISTORY_EVENT_BUDGET`.
    """

    target_tokens: int = Field(default=512, ge=16, le=8192)
    overlap_tokens: int = Field(default=50, ge=0)
    max_file_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    embedder: str = "onnx"
    metadata: dict[str, str] = Field(default_factory=dict)
    batch_files: int = Field(default=64, ge=1, le=1000)
    max_concurrent_batches: int = Field(default=4, ge=1, le=64)
    embed_chunks: int = Field(default=32, ge=1, le=1024)
    heartbeat_seconds: float = Field(default=30.0, gt=0, le=600)
    history_event_budget: int | None = Field(default=None, ge=50)

    @model_validator(mode="after")
    def _overlap_fits(self) -> IngestOptions:
        # chunk_text's own rule: chunks end no earlier than half the budget, so a smaller
        # overlap guarantees progress.
        if self.overlap_tokens and self.overlap_tokens >= self.target_tokens // 2:
            raise ValueError(
                f"overlap_tokens must be < target_tokens // 2 ({self.target_tokens // 2})"
            )
        return self


class IngestProgress(BaseModel):
    """What the `progress` query answers (and what a job carries across continue-as-new)."""

    state: Literal["planning", "running", "finishing", "completed", "cancelled"] = "planning"
    files_total: int = 0
    files_done: int = 0
    documents_stored: int = 0
    documents_unchanged: int = 0
    documents_failed: int = 0
    chunks_written: int = 0
    batches_done: int = 0
    batches_running: int = 0
    batches_failed: int = 0
    runs: int = Field(default=1, description="Workflow runs so far (continue-as-new).")


class IngestJob(BaseModel):
    """Input of IngestWorkflow: the job, and where a continued run picks up.

    Attributes:
        job_id: The workflow id; also the key of the job's staged files.
        tenant: Tenant name (search attributes, logs).
        tenant_id: Tenant UUID the documents belong to.
        gpu_queue: Task queue of the embedding activity.
        options: Chunking, limits and pacing.
        cursor: Highest staged file id already handed to a batch (continue-as-new).
        progress: Counters so far (continue-as-new).
        batch_errors: Batches that failed after their retries, with the reason.
    """

    job_id: str
    tenant: str
    tenant_id: str
    gpu_queue: str
    options: IngestOptions = Field(default_factory=IngestOptions)
    cursor: int = 0
    progress: IngestProgress | None = None
    batch_errors: list[str] = Field(default_factory=list)


class PlanRequest(BaseModel):
    """Ask for the next batches of a job's staged files after `after` (a file id)."""

    job_id: str
    after: int = 0
    batch_files: int
    max_batches: int
    count_total: bool = False


class FileRange(BaseModel):
    """Staged files `first`..`last` (ids, inclusive) of one job: one batch."""

    first: int
    last: int
    files: int


class BatchPlan(BaseModel):
    batches: list[FileRange]
    files_total: int | None = None


class BatchRef(BaseModel):
    """Input of IngestBatchWorkflow and of each of its stages: a reference, never data."""

    job_id: str
    tenant: str
    tenant_id: str
    gpu_queue: str
    files: FileRange
    options: IngestOptions


class JobRef(BaseModel):
    """Input of the job-level activities (summary, cleanup)."""

    job_id: str
    tenant: str


class StageCounts(BaseModel):
    """What one stage did to a batch's documents.

    Attributes:
        documents: Documents this stage passed on to the next one.
        unchanged: Documents already stored with the same content (nothing to do).
        failed: Files or documents that failed here, each with its reason in staging.
        chunks: Chunks cut (chunk stage), embedded (embed stage) or written (upsert stage).
    """

    documents: int = 0
    unchanged: int = 0
    failed: int = 0
    chunks: int = 0


class BatchResult(BaseModel):
    """Result of IngestBatchWorkflow."""

    files: int
    documents_stored: int = 0
    documents_unchanged: int = 0
    documents_failed: int = 0
    chunks_written: int = 0


class IngestFailure(BaseModel):
    """A file, JSON Lines line or document that was not stored, and why."""

    source: str
    kind: str = Field(
        description="empty, too_large, binary, unsupported, malformed, unreadable, "
        "store_failed or not_processed"
    )
    reason: str


class JobSummary(BaseModel):
    """Ground truth of a finished job, read from its staging rows."""

    files_total: int = 0
    files_failed: int = 0
    documents_stored: int = 0
    documents_unchanged: int = 0
    documents_failed: int = 0
    chunks_written: int = 0
    failures: list[IngestFailure] = Field(default_factory=list)
    failures_omitted: int = 0


class IngestResult(JobSummary):
    """Result of IngestWorkflow: the summary plus how the job ran."""

    job_id: str
    status: Literal["completed"] = "completed"
    batches: int = 0
    batch_errors: list[str] = Field(default_factory=list)
    runs: int = 1
