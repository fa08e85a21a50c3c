"""Every recorded history replays against today's workflow code without non-determinism.

A change that would break running workflows on deploy fails here first. Re-record with
`python -m tests.histories.record` only when a change is deliberately versioned
(`workflow.patched`) or the old histories can no longer exist in production.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from tests.histories.changed_workflow import ChangedLatencyProbe
from worker import workflow_classes, workflow_runner

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path: Path) -> None:
    replayer = Replayer(
        workflows=workflow_classes(),
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )
    await replayer.replay_workflow(_history(path))


def _workflow_type(path: Path) -> str:
    started = _history(path).events[0].workflow_execution_started_event_attributes
    return started.workflow_type.name


def test_every_workflow_kind_has_a_history() -> None:
    recorded = {_workflow_type(path) for path in HISTORIES}
    expected = {cls.__name__ for cls in workflow_classes()}
    assert expected <= recorded, f"no recorded history for {sorted(expected - recorded)}"


async def test_a_changed_workflow_raises_nondeterminism() -> None:
    replayer = Replayer(
        workflows=[ChangedLatencyProbe],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )
    with pytest.raises(NondeterminismError):
        await replayer.replay_workflow(
            _history(Path(__file__).parent / "histories" / "latency_probe.json")
        )
