"""A workflow that runs the cyclic garbage collector on its own thread, mid-activation.

Objects the activities create (Redis connection pools, HTTP clients) are freed whenever the
collector next runs, on whatever thread allocates then; when that is a workflow thread, their
finalisers run inside the sandbox. `test_workflow_sandbox.py` makes that happen on purpose.
Kept apart from the test module because the sandbox imports a workflow's module afresh.
"""

from __future__ import annotations

import gc

from temporalio import workflow


@workflow.defn
class CollectGarbageWorkflow:
    @workflow.run
    async def run(self) -> int:
        with workflow.unsafe.sandbox_unrestricted():
            return gc.collect()
