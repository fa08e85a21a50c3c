"""`keel replay`: replay recorded runs against the workflow code on disk, before deploying it.

A workflow's code must make the same decisions, in the same order, as the code that wrote its
history, or every run still open when the new workers start fails with a non-determinism
error. Replaying real histories against the new code finds that before the deploy: one run
(`keel replay RUN_ID`), or the last N closed runs of every workflow type
(`keel replay --recent N`), exiting non-zero on any divergence, so it can gate a deploy in CI.

A divergence is told in plain words: the event of the recorded history where the new code
parts from it, what the history did there (which activity, timer, child or marker) and what
the code does instead, with the remedy (`workflow.patched`, or a new workflow type).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, WorkflowRunner
from temporalio.workflow import NondeterminismError

REMEDY = (
    "Guard the change with `workflow.patched(...)` (old runs keep the old branch), or ship it "
    "as a new workflow type and let the old runs finish on the old workers."
)
# What the code issued at the diverging point, by the core's name for its state machine.
MACHINES = {
    "Activity": "schedules an activity",
    "LocalActivity": "runs a local activity",
    "Timer": "starts a timer",
    "ChildWorkflow": "starts a child workflow",
    "SignalExternal": "signals another workflow",
    "CancelExternal": "cancels another workflow",
    "Patch": "checks a patch marker",
    "UpsertSearchAttributes": "upserts search attributes",
    "ContinueAsNew": "continues as new",
    "CompleteWorkflow": "completes the workflow",
    "FailWorkflow": "fails the workflow",
    "Update": "accepts an update",
}


@dataclass(frozen=True)
class ReplayOutcome:
    """One run's replay: `ok`, or the divergence in plain words."""

    workflow_id: str
    run_id: str
    workflow_type: str
    ok: bool
    divergence: str = ""


def describe_event(event: HistoryEvent) -> str:
    """What a history event did, in a few words ("scheduled activity 'rag_rerank'")."""
    kind = event.event_type
    if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        name = event.activity_task_scheduled_event_attributes.activity_type.name
        return f"scheduled activity {name!r}"
    if kind == EventType.EVENT_TYPE_TIMER_STARTED:
        timeout = event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
        return f"started a {timeout.total_seconds():g} s timer"
    if kind == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
        child = event.start_child_workflow_execution_initiated_event_attributes.workflow_type
        return f"started child workflow {child.name!r}"
    if kind == EventType.EVENT_TYPE_MARKER_RECORDED:
        marker = event.marker_recorded_event_attributes.marker_name
        what = {"core_local_activity": "a local activity's result", "core_patch": "a patch"}
        return f"recorded {what.get(marker, f'marker {marker!r}')}"
    return f"recorded {EventType.Name(kind).removeprefix('EVENT_TYPE_').lower()}"


def _event(history: WorkflowHistory, event_id: int) -> HistoryEvent | None:
    for event in history.events:
        if event.event_id == event_id:
            return event
    return None


def explain(history: WorkflowHistory, failure: Exception) -> str:
    """A replay failure in plain words, naming the event where the code parts from history."""
    raw = str(failure)
    core = re.search(r"Nondeterminism error: (.*?)(?:\", source|$)", raw, re.S)
    message = core.group(1) if core else raw
    found = re.search(r"HistoryEvent\(id: (\d+)", message)
    event = _event(history, int(found.group(1))) if found else None
    at = f"event {event.event_id}, where the recorded run {describe_event(event)}" if event else ""
    machine = re.match(r"(\w+) machine does not handle this event", message)
    if machine and at:
        doing = MACHINES.get(machine.group(1), f"issues a {machine.group(1)} command")
        return f"diverges at {at}; the code on disk {doing} there instead. {REMEDY}"
    mismatch = re.search(
        r"type of scheduled event '([^']*)' does not match .* command '([^']*)'", message
    )
    if mismatch:
        return (
            f"diverges where the recorded run scheduled activity {mismatch.group(1)!r}: the "
            f"code on disk schedules {mismatch.group(2)!r} there instead. {REMEDY}"
        )
    if "No command scheduled for event" in message and at:
        return (
            f"diverges at {at}; the code on disk no longer does this (removed or moved). {REMEDY}"
        )
    if not isinstance(failure, NondeterminismError):
        return f"cannot be replayed: {message}"
    return f"diverges: {message}" + (f" (at {at})" if at else "") + f". {REMEDY}"


async def replay_histories(
    histories: Sequence[WorkflowHistory],
    workflows: Sequence[type],
    runner: WorkflowRunner,
) -> list[ReplayOutcome]:
    """Replay each history against `workflows` (the code on disk), in `runner`: the workers'
    sandbox (`worker.workflow_runner()`), so a replay runs what the workers run."""
    replayer = Replayer(
        workflows=list(workflows),
        data_converter=pydantic_data_converter,
        workflow_runner=runner,
    )
    outcomes = []
    for history in histories:
        started = history.events[0].workflow_execution_started_event_attributes
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        failure = result.replay_failure
        outcomes.append(
            ReplayOutcome(
                workflow_id=history.workflow_id,
                run_id=started.original_execution_run_id,
                workflow_type=started.workflow_type.name,
                ok=failure is None,
                divergence="" if failure is None else explain(history, failure),
            )
        )
    return outcomes


async def fetch_run(client: Client, workflow_id: str, run_id: str | None = None) -> WorkflowHistory:
    """One run's history (its latest run unless `run_id`)."""
    return await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()


async def fetch_recent(
    client: Client, workflow_types: Sequence[str], per_type: int, query: str = ""
) -> list[WorkflowHistory]:
    """The last `per_type` closed runs of each workflow type (optionally narrowed by a
    visibility `query`, e.g. `KeelTenant = "acme"`), newest first."""
    histories = []
    for name in workflow_types:
        parts = [f"WorkflowType = '{name}'", "ExecutionStatus != 'Running'"]
        if query:
            parts.append(f"({query})")
        async for execution in client.list_workflows(" AND ".join(parts), limit=per_type):
            histories.append(await fetch_run(client, execution.id, execution.run_id))
    return histories


def workflow_types(workflows: Sequence[type]) -> list[str]:
    """The registered names of workflow classes (`@workflow.defn(name=...)` or the class's)."""
    names = []
    for cls in workflows:
        definition = getattr(cls, "__temporal_workflow_definition", None)
        names.append(getattr(definition, "name", None) or cls.__name__)
    return names
