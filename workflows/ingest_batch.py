"""IngestBatchWorkflow: one batch of a job's files through parse -> chunk -> embed -> upsert.

A child of IngestWorkflow. Each stage is a regular activity that heartbeats, reads its input
from staging and leaves its output there; only the batch reference and counts pass through
this history. Parse, chunk and upsert run on the cpu queue, embedding on the gpu queue named
in the input.

Cancelling the batch cancels the running stage and waits until it has stopped, so when the
job reports "cancelled" nothing of it is still writing. Storage is one transaction per group
of whole documents, so a cancelled batch leaves whole documents or none.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from keel.contracts.ingest import BatchRef, BatchResult, StageCounts
    from workflows.policies import BATCH_TIMEOUT, STAGE_RETRY


@workflow.defn
class IngestBatchWorkflow:
    """Parse, chunk, embed and store one batch of staged files."""

    @workflow.run
    async def run(self, ref: BatchRef) -> BatchResult:
        parsed = await self._stage("ingest_parse", ref)
        if parsed.documents:
            await self._stage("ingest_chunk", ref)
            await self._stage("ingest_embed", ref, task_queue=ref.gpu_queue)
            stored = await self._stage("ingest_upsert", ref)
        else:
            stored = parsed
        return BatchResult(
            files=ref.files.files,
            documents_stored=stored.documents,
            documents_unchanged=stored.unchanged,
            documents_failed=stored.failed,
            chunks_written=stored.chunks,
        )

    async def _stage(
        self, name: str, ref: BatchRef, *, task_queue: str | None = None
    ) -> StageCounts:
        counts: StageCounts = await workflow.execute_activity(
            name,
            ref,
            result_type=StageCounts,
            task_queue=task_queue,
            start_to_close_timeout=BATCH_TIMEOUT,
            heartbeat_timeout=timedelta(seconds=ref.options.heartbeat_seconds),
            retry_policy=STAGE_RETRY,
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        return counts
