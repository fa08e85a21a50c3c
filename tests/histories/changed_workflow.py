"""A deliberately broken deploy: LatencyProbeWorkflow with a step changed in place."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow


@workflow.defn(name="LatencyProbeWorkflow")
class ChangedLatencyProbe:
    """A timer where the recorded history has an activity: replay must refuse it."""

    @workflow.run
    async def run(self, request: object) -> None:
        del request
        await workflow.sleep(timedelta(milliseconds=1))
