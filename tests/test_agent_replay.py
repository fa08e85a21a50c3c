"""Versioning AgentTeamWorkflow: the draft safety check shipped behind `workflow.patched`.

`agent_team_pre_safety_patch.json` was recorded before the check existed. It must still
replay on today's code (the patch is off for it), while the same change shipped without the
gate breaks it: that is the deploy the patch protects running workflows from.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from tests.histories.changed_agent_team import UngatedAgentTeam
from worker import workflow_runner
from workflows.agents import SAFETY_PATCH, AgentTeamWorkflow

HISTORIES = Path(__file__).parent / "histories"
OLD = HISTORIES / "agent_team_pre_safety_patch.json"
NEW = HISTORIES / "agent_team.json"


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def _activities(path: Path) -> list[str]:
    events = json.loads(path.read_text())["events"]
    return [
        e["activityTaskScheduledEventAttributes"]["activityType"]["name"]
        for e in events
        if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"
    ]


def _patches(path: Path) -> list[str]:
    """Ids of the `workflow.patched` markers in a history."""
    events = json.loads(path.read_text())["events"]
    found = []
    for e in events:
        marker = e.get("markerRecordedEventAttributes", {})
        if marker.get("markerName") == "core_patch":
            for payload in marker["details"]["patch-data"]["payloads"]:
                found.append(json.loads(base64.b64decode(payload["data"]))["id"])
    return found


def test_the_histories_straddle_the_change() -> None:
    assert "agent_safety_check" not in _activities(OLD) and _patches(OLD) == []
    assert "agent_safety_check" in _activities(NEW) and _patches(NEW) == [SAFETY_PATCH]


async def test_history_from_before_the_safety_patch_replays_on_todays_code() -> None:
    replayer = Replayer(
        workflows=[AgentTeamWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )
    await replayer.replay_workflow(_history(OLD))
    await replayer.replay_workflow(_history(NEW))


async def test_the_same_change_without_the_patch_breaks_old_runs() -> None:
    replayer = Replayer(
        workflows=[UngatedAgentTeam],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )
    with pytest.raises(NondeterminismError):
        await replayer.replay_workflow(_history(OLD))
