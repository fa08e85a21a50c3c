"""Agent-run side effects: the transcript in Postgres, the safety hook, document-job I/O.

A run's history carries counts and summaries; the full text of every turn is appended here
(`agent_transcripts`, keyed by transcript id and sequence number, so a retried append never
writes a row twice). Document jobs page through the tenant's documents by id, read one
document's text at a time, and store each extraction as its own row: partial results are
readable while the job runs.
"""

from __future__ import annotations

import importlib
import json
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from keel.contracts.agents import SafetyCheckInput, SafetyFlag, TranscriptAppend
from keel.contracts.documents import (
    DocumentPage,
    DocumentPageRequest,
    DocumentResultWrite,
    DocumentText,
    DocumentTextRequest,
)
from keel.errors import ErrorType, failure
from keel.telemetry import activity_context


def _safety_layer(module: str, name: str) -> Callable[..., Any] | None:
    """A function of the safety package when it provides one (it is built separately)."""
    try:
        found = getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None
    return found if callable(found) else None


def check_draft_safety(check: SafetyCheckInput) -> SafetyFlag:
    """The agents' safety hook: is this draft safe to show or to act on?

    It runs every check the safety package offers: its combined output check
    (`keel.safety.check_output`: moderation, leaks, secrets) when present, and the
    prompt-injection detector on the draft as text that came from tools (an agent that read
    an injected page tends to repeat its instructions). Without the package it flags nothing.
    """
    signals: list[str] = []
    reasons: list[str] = []
    checkers: list[str] = []
    output_check = _safety_layer("keel.safety", "check_output")
    if output_check is not None:
        checkers.append("check_output")
        # No retrieved context: grounding is the critic's job here; the task is the user's
        # own input, whose personal data the draft may repeat.
        verdict = output_check(check.text, user_input=check.task)
        if verdict.blocked:
            reasons.append(verdict.reason or verdict.action)
            signals.extend(verdict.signals)
    injection = _safety_layer("keel.safety.injection", "detect_injection")
    if injection is not None:
        checkers.append("detect_injection")
        verdict = injection(check.text, channel="tool_output")
        if verdict.blocked:
            reasons.append(verdict.reason or "prompt injection")
            signals.extend(verdict.signals)
    return SafetyFlag(
        flagged=bool(reasons),
        reason="; ".join(reasons),
        signals=signals[:20],
        checker=",".join(checkers) or "none",
    )


class AgentActivities:
    """Holds the database engine the agent runs and document jobs write to."""

    def __init__(self, *, engine: AsyncEngine) -> None:
        self.engine = engine

    @activity.defn(name="agent_transcript_append")
    async def transcript_append(self, batch: TranscriptAppend) -> int:
        """Append turns to a run's transcript; rows already written are skipped."""
        if not batch.entries:
            return 0
        rows = [
            {
                "transcript_id": batch.transcript_id,
                "seq": e.seq,
                "tenant_id": uuid.UUID(batch.tenant_id),
                "run_id": batch.run_id,
                "round": e.round,
                "turn": e.turn,
                "role": e.role,
                "kind": e.kind,
                "content": e.content,
                "data": json.dumps(e.data),
            }
            for e in batch.entries
        ]
        async with self.engine.begin() as conn:
            result = await conn.execute(
                text(
                    """
                    INSERT INTO agent_transcripts (transcript_id, seq, tenant_id, run_id, round,
                        turn, role, kind, content, data)
                    VALUES (:transcript_id, :seq, :tenant_id, :run_id, :round, :turn, :role,
                        :kind, :content, CAST(:data AS jsonb))
                    ON CONFLICT (transcript_id, seq) DO NOTHING
                    """
                ),
                rows,
            )
        return int(result.rowcount or 0)

    @activity.defn(name="agent_safety_check")
    async def safety_check(self, check: SafetyCheckInput) -> SafetyFlag:
        """Run the safety hook on a draft (see `check_draft_safety`)."""
        with activity_context(check.tenant):
            return check_draft_safety(check)

    @activity.defn(name="agent_document_page")
    async def document_page(self, request: DocumentPageRequest) -> DocumentPage:
        """The next page of the tenant's document ids matching the filter, in id order."""
        f = request.filter
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text(
                    """
                    SELECT document_id FROM agent_document_metadata
                    WHERE tenant_id = :tenant_id
                      AND (CAST(:after AS uuid) IS NULL OR document_id > CAST(:after AS uuid))
                      AND (CAST(:department AS text) IS NULL OR department = :department)
                      AND (CAST(:doc_type AS text) IS NULL OR doc_type = :doc_type)
                      AND (CAST(:prefix AS text) IS NULL OR starts_with(source, :prefix))
                    ORDER BY document_id LIMIT :limit
                    """
                ),
                {
                    "tenant_id": uuid.UUID(request.tenant_id),
                    "after": request.after_id or None,
                    "department": f.department,
                    "doc_type": f.doc_type,
                    "prefix": f.source_prefix,
                    "limit": request.limit,
                },
            )
            return DocumentPage(document_ids=[str(r[0]) for r in rows])

    @activity.defn(name="agent_document_text")
    async def document_text(self, request: DocumentTextRequest) -> DocumentText:
        """A document's title and its chunks' text in order, cut at `max_chars`."""
        async with self.engine.connect() as conn:
            title = (
                await conn.execute(
                    text("SELECT title FROM documents WHERE id = :d AND tenant_id = :t"),
                    {"d": uuid.UUID(request.document_id), "t": uuid.UUID(request.tenant_id)},
                )
            ).scalar_one_or_none()
            if title is None:
                raise failure(ErrorType.NOT_FOUND, f"document {request.document_id} not found")
            pieces = (
                await conn.execute(
                    text(
                        "SELECT text FROM chunks WHERE document_id = :d AND tenant_id = :t "
                        "ORDER BY position"
                    ),
                    {"d": uuid.UUID(request.document_id), "t": uuid.UUID(request.tenant_id)},
                )
            ).scalars()
            body = ""
            for piece in pieces:
                body = f"{body}\n{piece}" if body else piece
                if len(body) > request.max_chars:
                    break
        return DocumentText(
            document_id=request.document_id,
            title=title,
            text=body[: request.max_chars],
            truncated=len(body) > request.max_chars,
        )

    @activity.defn(name="agent_document_store_result")
    async def document_store_result(self, write: DocumentResultWrite) -> None:
        """Store (or replace) one document's extraction for a job."""
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    """
                    INSERT INTO agent_document_results (job_id, document_id, tenant_id, ok,
                        result, error, cost_usd)
                    VALUES (:job, :doc, :tenant, :ok, CAST(:result AS jsonb), :error, :cost)
                    ON CONFLICT (job_id, document_id) DO UPDATE SET ok = EXCLUDED.ok,
                        result = EXCLUDED.result, error = EXCLUDED.error,
                        cost_usd = EXCLUDED.cost_usd, created_at = now()
                    """
                ),
                {
                    "job": write.job_id,
                    "doc": uuid.UUID(write.document_id),
                    "tenant": uuid.UUID(write.tenant_id),
                    "ok": write.ok,
                    "result": json.dumps(write.result),
                    "error": write.error,
                    "cost": write.cost_usd,
                },
            )
