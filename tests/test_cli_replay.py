"""`keel replay`: real runs fetched from Temporal replay against the code on disk; a
deliberately changed workflow is caught and its divergence told in plain words."""

from __future__ import annotations

import asyncio
import subprocess
import uuid

from temporalio.worker import Worker

from keel.app.replay import fetch_recent, fetch_run, replay_histories, workflow_types
from keel.clients import Clients
from keel.contracts.diagnostics import LatencyProbeInput
from keel.settings import Settings
from tests.histories.changed_workflow import ChangedLatencyProbe
from tests.test_cli import KEEL, _env
from worker import workflow_classes, workflow_runner
from workflows.diagnostics import LatencyProbeWorkflow


async def _probe_run(clients: Clients, settings: Settings) -> str:
    workflow_id = f"replay-probe-{uuid.uuid4().hex[:8]}"
    await clients.temporal.execute_workflow(
        LatencyProbeWorkflow.run,
        LatencyProbeInput(kind="activity", steps=2),
        id=workflow_id,
        task_queue=settings.task_queue_cpu,
    )
    return workflow_id


async def test_a_run_replays_and_a_changed_workflow_diverges_in_plain_words(
    clients: Clients, settings: Settings, workers: list[Worker]
) -> None:
    workflow_id = await _probe_run(clients, settings)
    history = await fetch_run(clients.temporal, workflow_id)

    [same] = await replay_histories([history], workflow_classes(), workflow_runner())
    assert same.ok and same.workflow_type == "LatencyProbeWorkflow"

    [changed] = await replay_histories([history], [ChangedLatencyProbe], workflow_runner())
    assert not changed.ok
    assert (
        "event 5, where the recorded run scheduled activity 'checksum_step'" in changed.divergence
    )
    assert "starts a timer there instead" in changed.divergence
    assert "workflow.patched" in changed.divergence  # and what to do about it


async def test_recent_runs_of_every_type_replay_through_the_cli(
    clients: Clients, settings: Settings, workers: list[Worker]
) -> None:
    workflow_id = await _probe_run(clients, settings)
    query = f"WorkflowId = '{workflow_id}'"
    names = workflow_types(workflow_classes())
    assert "LatencyProbeWorkflow" in names and "RagQueryWorkflow" in names
    for _ in range(50):  # visibility catches up with the closed run within moments
        if await fetch_recent(clients.temporal, names, 5, query):
            break
        await asyncio.sleep(0.1)

    result = await asyncio.to_thread(
        subprocess.run,
        [KEEL, "replay", "--recent", "5", "--query", query],
        capture_output=True,
        text=True,
        env=_env(settings),
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"replays  LatencyProbeWorkflow  {workflow_id}" in result.stdout
    assert "1 run(s) replayed, 0 diverged" in result.stdout


def test_replay_needs_a_run_or_recent(settings: Settings) -> None:
    result = subprocess.run(
        [KEEL, "replay"], capture_output=True, text=True, env=_env(settings), check=False
    )
    assert result.returncode == 2
    assert "WORKFLOW_ID or --recent" in result.stderr
