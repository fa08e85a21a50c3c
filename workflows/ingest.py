"""IngestWorkflow: one job of many documents, fanned out to batch child workflows.

    plan batches (local activity, keyset over staged file ids)
      -> up to `max_concurrent_batches` IngestBatchWorkflow children in flight
      -> each child: parse -> chunk -> embed (gpu) -> upsert
    -> summary from staging (exact counts, per-file failures) -> drop staging -> result

History stays small: a batch is a range of file ids, a stage's result is counts. Before the
history nears Temporal's 10k-event limit (`HISTORY_EVENT_BUDGET`, or when the server
suggests it), the job stops starting batches, lets the running ones finish, and continues as
new from the last file id handed out, carrying its counters. A job of any size therefore
replays quickly, and its progress survives the hand-over.

`progress` (a query) answers files done/total, documents stored/unchanged/failed and chunks
written; `GET /v1/runs/{id}` shows it. Cancelling the job cancels the running batches, waits
for them to stop, drops the staging rows and ends the run as cancelled.
"""

from __future__ import annotations

import asyncio
from collections import deque
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from activities.ingest_jobs import IngestJobActivities
    from keel.contracts.ingest import (
        BatchPlan,
        BatchRef,
        BatchResult,
        FileRange,
        IngestJob,
        IngestProgress,
        IngestResult,
        JobRef,
        PlanRequest,
    )
    from workflows.common import publish_status
    from workflows.ingest_batch import IngestBatchWorkflow
    from workflows.policies import HISTORY_EVENT_BUDGET, QUICK_RETRY, QUICK_TIMEOUT

# Summary and cleanup touch every staging row of the job once; generous, not batch-long.
JOB_STEP_TIMEOUT = timedelta(minutes=5)
MAX_BATCH_ERRORS = 20  # kept in the result; further failed batches are only counted


@workflow.defn
class IngestWorkflow:
    """Ingest every file staged under the job id, in batches, at bounded concurrency."""

    def __init__(self) -> None:
        self._progress = IngestProgress()
        self._children: dict[int, workflow.ChildWorkflowHandle[Any, BatchResult]] = {}

    @workflow.query
    def progress(self) -> dict[str, Any]:
        """Files done/total, documents stored/unchanged/failed, chunks written, state."""
        return self._progress.model_dump()

    @workflow.run
    async def run(self, job: IngestJob) -> IngestResult:
        if job.progress is not None:
            self._progress = job.progress.model_copy(update={"runs": job.progress.runs + 1})
        budget = job.options.history_event_budget or HISTORY_EVENT_BUDGET
        running: dict[asyncio.Task[Any], FileRange] = {}
        try:
            cursor = await self._dispatch_all(job, running, budget)
            if cursor is None:
                return await self._finish(job)
        except asyncio.CancelledError:
            await self._cancel(job, running)
            raise
        self._progress.state = "running"
        workflow.continue_as_new(
            job.model_copy(update={"cursor": cursor, "progress": self._progress})
        )

    async def _dispatch_all(
        self, job: IngestJob, running: dict[asyncio.Task[Any], FileRange], budget: int
    ) -> int | None:
        """Run every batch; returns the cursor to continue from if history grew too long."""
        opts = job.options
        pending: deque[FileRange] = deque()
        cursor, exhausted, hand_over = job.cursor, False, False
        while True:
            if not pending and not exhausted and not hand_over:
                plan = await self._plan(job, cursor)
                pending.extend(plan.batches)
                exhausted = len(plan.batches) < 2 * opts.max_concurrent_batches
                self._progress.state = "running"
            while pending and len(running) < opts.max_concurrent_batches and not hand_over:
                batch = pending.popleft()
                running[asyncio.create_task(self._run_batch(job, batch))] = batch
                cursor = batch.last
                self._progress.batches_running = len(running)
            if not running:
                break
            done, _ = await workflow.wait(list(running), return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                self._record(job, running.pop(task), task)
            self._progress.batches_running = len(running)
            info = workflow.info()
            if info.get_current_history_length() > budget or info.is_continue_as_new_suggested():
                hand_over = True  # drain what runs, then continue as new
        return cursor if hand_over and (pending or not exhausted) else None

    async def _plan(self, job: IngestJob, cursor: int) -> BatchPlan:
        first = self._progress.files_total == 0 and job.progress is None
        plan: BatchPlan = await workflow.execute_local_activity_method(
            IngestJobActivities.plan,
            PlanRequest(
                job_id=job.job_id,
                after=cursor,
                batch_files=job.options.batch_files,
                max_batches=2 * job.options.max_concurrent_batches,
                count_total=first,
            ),
            start_to_close_timeout=QUICK_TIMEOUT,
            retry_policy=QUICK_RETRY,
        )
        if plan.files_total is not None:
            self._progress.files_total = plan.files_total
        return plan

    async def _run_batch(self, job: IngestJob, batch: FileRange) -> BatchResult:
        """Start the batch's child and wait for it, in a task of its own.

        Only the workflow's main task receives the job's cancellation, so a child is never
        left half-started by it: `_cancel` waits for every start, then cancels each child
        through its handle and waits for it to stop.
        """
        handle = await workflow.start_child_workflow(
            IngestBatchWorkflow.run,
            BatchRef(
                job_id=job.job_id,
                tenant=job.tenant,
                tenant_id=job.tenant_id,
                gpu_queue=job.gpu_queue,
                files=batch,
                options=job.options,
            ),
            # Unique within the job across continue-as-new: file ids are never reused. From
            # the input, not workflow.info(), so a replay under another id issues the same.
            id=f"{job.job_id}-b{batch.first}",
        )
        self._children[batch.first] = handle
        try:
            return await handle
        finally:
            del self._children[batch.first]

    def _record(self, job: IngestJob, batch: FileRange, task: asyncio.Task[Any]) -> None:
        p = self._progress
        p.files_done += batch.files
        p.batches_done += 1
        exc = task.exception()
        if exc is None:
            result: BatchResult = task.result()
            p.documents_stored += result.documents_stored
            p.documents_unchanged += result.documents_unchanged
            p.documents_failed += result.documents_failed
            p.chunks_written += result.chunks_written
            return
        # The batch gave up after its retries; the job goes on, and the summary counts the
        # batch's unfinished files as failed.
        p.batches_failed += 1
        cause = exc.cause if isinstance(exc, ChildWorkflowError) and exc.cause else exc
        if len(job.batch_errors) < MAX_BATCH_ERRORS:
            job.batch_errors.append(f"files {batch.first}-{batch.last}: {cause}")

    async def _finish(self, job: IngestJob) -> IngestResult:
        self._progress.state = "finishing"
        ref = JobRef(job_id=job.job_id, tenant=job.tenant)
        summary = await workflow.execute_activity_method(
            IngestJobActivities.summarize,
            ref,
            start_to_close_timeout=JOB_STEP_TIMEOUT,
            retry_policy=QUICK_RETRY,
        )
        await self._cleanup(ref)
        p = self._progress
        p.state = "completed"
        # The summary is the ground truth (it also sees batches that failed part-way).
        p.documents_stored = summary.documents_stored
        p.documents_unchanged = summary.documents_unchanged
        p.documents_failed = summary.documents_failed
        p.chunks_written = summary.chunks_written
        publish_status("completed")
        return IngestResult(
            **summary.model_dump(),
            job_id=job.job_id,
            batches=p.batches_done,
            batch_errors=job.batch_errors,
            runs=p.runs,
        )

    async def _cancel(self, job: IngestJob, running: dict[asyncio.Task[Any], FileRange]) -> None:
        await workflow.wait_condition(
            lambda: all(t.done() or b.first in self._children for t, b in running.items())
        )
        for handle in self._children.values():
            handle.cancel()
        # Children cancel their running stage and wait for it to stop (see
        # IngestBatchWorkflow), so once they are all done nothing of the job still writes.
        await asyncio.gather(*running, return_exceptions=True)
        self._progress.state = "cancelled"
        self._progress.batches_running = 0
        await self._cleanup(JobRef(job_id=job.job_id, tenant=job.tenant))
        publish_status("cancelled")

    async def _cleanup(self, ref: JobRef) -> None:
        await workflow.execute_activity_method(
            IngestJobActivities.cleanup,
            ref,
            start_to_close_timeout=JOB_STEP_TIMEOUT,
            retry_policy=QUICK_RETRY,
        )
