"""Contracts of `DocumentJobWorkflow`: one extraction agent over many stored documents,
each a durable step with its result stored per document. Everything here travels through
workflow history: fields are only ever added, with defaults.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from keel.contracts.agents import RoleSpec
from keel.contracts.gateway import CallContext, GatewayConfig


class DocumentFilter(BaseModel):
    """Which documents of the tenant a job reads (metadata equality, like `sql_metadata`)."""

    model_config = ConfigDict(frozen=True)

    department: str | None = None
    doc_type: str | None = None
    source_prefix: str | None = None


class DocumentJobRequest(BaseModel):
    """Input of `DocumentJobWorkflow`: run one extractor role over each selected document."""

    context: CallContext
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    role: RoleSpec
    instructions: str = Field(default="", max_length=4000)
    filter: DocumentFilter = Field(default_factory=DocumentFilter)
    max_documents: int = Field(default=1000, ge=1, le=100_000)
    concurrency: int = Field(default=4, ge=1, le=64)
    page_size: int = Field(default=50, ge=1, le=500)
    max_chars: int = Field(default=6000, ge=200, le=50_000)
    history_event_budget: int = Field(
        default=4_000, ge=20, description="Continue-as-new (between pages) past this length."
    )
    # Carried across continue-as-new.
    after_id: str = ""
    done: int = 0
    failed: int = 0
    cost_usd: float = 0.0
    continued: int = 0


class DocumentTask(BaseModel):
    """Input of the per-document child run."""

    job_id: str
    document_id: str
    context: CallContext
    gateway: GatewayConfig
    role: RoleSpec
    instructions: str = ""
    max_chars: int = 6000


class DocumentOutcome(BaseModel):
    """A child's compact answer; the extracted JSON is in Postgres (`agent_document_results`)."""

    document_id: str
    ok: bool
    error: str = ""
    cost_usd: float = 0.0
    items: int = 0


class DocumentPage(BaseModel):
    document_ids: list[str]


class DocumentPageRequest(BaseModel):
    tenant_id: str
    filter: DocumentFilter = Field(default_factory=DocumentFilter)
    after_id: str = ""
    limit: int = 50


class DocumentText(BaseModel):
    document_id: str
    title: str = ""
    text: str
    truncated: bool = False


class DocumentTextRequest(BaseModel):
    tenant_id: str
    document_id: str
    max_chars: int = 6000


class DocumentResultWrite(BaseModel):
    job_id: str
    tenant_id: str
    document_id: str
    ok: bool
    result: dict[str, Any] = Field(default_factory=dict)
    error: str = ""
    cost_usd: float = 0.0


class DocumentJobProgress(BaseModel):
    """The `progress` query of a document job; partial results are read from Postgres."""

    status: Literal["running", "finished"]
    done: int
    failed: int
    in_flight: int
    cost_usd: float
    continued: int
    recent: list[DocumentOutcome] = Field(default_factory=list)


class DocumentJobResult(BaseModel):
    done: int
    failed: int
    cost_usd: float
    continued: int
    job_id: str


class StoredDocumentResult(BaseModel):
    """One row of a job's results as the API returns it."""

    document_id: str
    ok: bool
    result: dict[str, Any] = Field(default_factory=dict)
    error: str = ""
    cost_usd: float = 0.0
    created_at: datetime | None = None
