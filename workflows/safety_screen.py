"""SafetyScreenWorkflow: run a batch of red-team cases through the safety activities.

Each verdict is a local activity result, so the whole screening is in history: which layer
decided, with which score and signals.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.redteam import RedTeamActivities
    from keel.contracts.redteam import ScreenBatch, ScreenResult
    from keel.contracts.safety import SafetyVerdict
    from workflows.policies import QUICK_RETRY


@workflow.defn
class SafetyScreenWorkflow:
    @workflow.run
    async def run(self, batch: ScreenBatch) -> ScreenResult:
        verdicts: dict[str, SafetyVerdict] = {}
        for case in batch.cases:
            verdicts[case.id] = await workflow.execute_local_activity_method(
                RedTeamActivities.screen_case,
                case,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=QUICK_RETRY,
            )
        return ScreenResult(verdicts=verdicts)
