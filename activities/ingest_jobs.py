"""Ingest activities for a whole job (cpu queue): plan its batches, sum up its outcome from
the staging rows, and drop those rows at the end. The per-batch stages are in
`activities.ingest`."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.staging import drop_job
from keel.contracts.ingest import (
    BatchPlan,
    FileRange,
    IngestFailure,
    JobRef,
    JobSummary,
    PlanRequest,
)
from keel.telemetry import get_logger

MAX_REPORTED_FAILURES = 500  # per job result; the counts stay exact beyond it

log = get_logger("keel.ingest")


class IngestJobActivities:
    """The job-level steps of `IngestWorkflow`, holding PostgreSQL."""

    def __init__(self, *, engine: AsyncEngine) -> None:
        self.engine = engine

    @activity.defn(name="ingest_plan")
    async def plan(self, request: PlanRequest) -> BatchPlan:
        """The next batches of staged files after `request.after` (a short local activity)."""
        limit = request.batch_files * request.max_batches
        async with self.engine.connect() as conn:
            ids = (
                (
                    await conn.execute(
                        text(
                            "SELECT id FROM ingest_files WHERE job_id = :j AND id > :a "
                            "ORDER BY id LIMIT :n"
                        ),
                        {"j": request.job_id, "a": request.after, "n": limit},
                    )
                )
                .scalars()
                .all()
            )
            total = None
            if request.count_total:
                total = (
                    await conn.execute(
                        text("SELECT count(*) FROM ingest_files WHERE job_id = :j"),
                        {"j": request.job_id},
                    )
                ).scalar_one()
        batches = [
            FileRange(first=group[0], last=group[-1], files=len(group))
            for group in (
                ids[i : i + request.batch_files] for i in range(0, len(ids), request.batch_files)
            )
        ]
        return BatchPlan(batches=batches, files_total=total)

    @activity.defn(name="ingest_summarize")
    async def summarize(self, ref: JobRef) -> JobSummary:
        """The job's outcome from its staging rows: exact counts and the failures, by file.

        Files whose batch never finished (it failed after all retries) count as failed.
        """
        params = {"j": ref.job_id}
        async with self.engine.connect() as conn:
            files_total = (
                await conn.execute(
                    text("SELECT count(*) FROM ingest_files WHERE job_id = :j"), params
                )
            ).scalar_one()
            by_status = {
                r[0]: (int(r[1]), int(r[2]))
                for r in await conn.execute(
                    text(
                        "SELECT status, count(*), coalesce(sum(chunks_written), 0) "
                        "FROM ingest_docs WHERE job_id = :j GROUP BY status"
                    ),
                    params,
                )
            }
            files_failed = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM ingest_files f WHERE f.job_id = :j AND NOT EXISTS "
                        "(SELECT 1 FROM ingest_docs d WHERE d.file_id = f.id "
                        "AND d.status IN ('stored', 'unchanged'))"
                    ),
                    params,
                )
            ).scalar_one()
            failures = (
                await conn.execute(
                    text(
                        "SELECT source, error_kind, error FROM ingest_docs "
                        "WHERE job_id = :j AND status = 'failed' "
                        "UNION ALL SELECT source, 'not_processed', "
                        "'its batch failed before the document was stored' FROM ingest_docs "
                        "WHERE job_id = :j AND status IN ('parsed', 'chunked') "
                        "UNION ALL SELECT f.name, 'not_processed', "
                        "'its batch failed before the file was parsed' FROM ingest_files f "
                        "WHERE f.job_id = :j AND NOT EXISTS "
                        "(SELECT 1 FROM ingest_docs d WHERE d.file_id = f.id) "
                        "ORDER BY 1 LIMIT :n"
                    ),
                    {**params, "n": MAX_REPORTED_FAILURES + 1},
                )
            ).all()
            unprocessed_files = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM ingest_files f WHERE f.job_id = :j AND NOT EXISTS "
                        "(SELECT 1 FROM ingest_docs d WHERE d.file_id = f.id)"
                    ),
                    params,
                )
            ).scalar_one()
        zero = (0, 0)
        failed = (
            by_status.get("failed", zero)[0]
            + by_status.get("parsed", zero)[0]
            + by_status.get("chunked", zero)[0]
            + int(unprocessed_files)
        )
        return JobSummary(
            files_total=int(files_total),
            files_failed=int(files_failed),
            documents_stored=by_status.get("stored", zero)[0],
            documents_unchanged=by_status.get("unchanged", zero)[0],
            documents_failed=failed,
            chunks_written=by_status.get("stored", zero)[1],
            failures=[
                IngestFailure(source=s, kind=k or "failed", reason=e or "")
                for s, k, e in failures[:MAX_REPORTED_FAILURES]
            ],
            failures_omitted=max(0, failed - MAX_REPORTED_FAILURES),
        )

    @activity.defn(name="ingest_cleanup")
    async def cleanup(self, ref: JobRef) -> int:
        """Delete the job's staging rows (files, documents, chunks); idempotent."""
        dropped = await drop_job(self.engine, ref.job_id)
        log.info("ingest staging dropped", job_id=ref.job_id, files=dropped)
        return dropped
