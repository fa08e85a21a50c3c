"""Diagnostic workflows: prove the workers answer (`keel check`) and measure step overhead."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.diagnostics import DiagnosticsActivities, checksum_step
    from keel.contracts.diagnostics import (
        LatencyProbeInput,
        LatencyProbeResult,
        PingInput,
        PingResult,
        WorkerInfo,
    )
    from workflows.policies import LOCAL_TIMEOUT, QUICK_RETRY


@workflow.defn
class PingWorkflow:
    """Runs one `ping` activity on each requested queue and reports who answered."""

    @workflow.run
    async def run(self, request: PingInput) -> PingResult:
        workers: list[WorkerInfo] = []
        for queue in request.queues:
            info = await workflow.execute_activity_method(
                DiagnosticsActivities.ping,
                queue,
                task_queue=queue,
                # A missing worker should show up as a failed check within seconds, not hang.
                schedule_to_close_timeout=timedelta(seconds=20),
                retry_policy=QUICK_RETRY,
            )
            workers.append(info)
        return PingResult(workers=workers)


@workflow.defn
class LatencyProbeWorkflow:
    """Runs `steps` trivial steps as activities, local activities or inline code.

    The client times the whole run; the difference between kinds is the per-step cost of
    Temporal's machinery, which is what `make bench` reports.
    """

    @workflow.run
    async def run(self, request: LatencyProbeInput) -> LatencyProbeResult:
        total = 0
        for step in range(request.steps):
            if request.kind == "activity":
                total += await workflow.execute_activity(
                    checksum_step, step, start_to_close_timeout=LOCAL_TIMEOUT
                )
            elif request.kind == "local_activity":
                total += await workflow.execute_local_activity(
                    checksum_step, step, start_to_close_timeout=LOCAL_TIMEOUT
                )
            else:
                total += step * 31 % 7
        return LatencyProbeResult(kind=request.kind, steps=request.steps, checksum=total)
