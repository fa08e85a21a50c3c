"""Bench 1: the cost of one workflow step as an activity, a local activity, or inline code.

Each kind runs the same trivial arithmetic `STEPS` times in one workflow; the client times the
run. The history's event timestamps then say where a plain activity's time goes, and the same
probe on a dev server without persistence shows what SQLite durability costs.
"""

from __future__ import annotations

import collections
import uuid
from typing import Any

from temporalio.api.enums.v1 import EventType

from keel.clients import Clients
from keel.contracts.diagnostics import LatencyProbeInput, StepKind
from keel.settings import Settings
from tests.bench.common import Entry, bench_stack, median_ms, timed
from worker import build_worker

STEPS = 40
REPEAT = 3
KINDS: list[StepKind] = ["activity", "local_activity", "inline"]


async def _probe(config: Settings) -> tuple[dict[str, float], dict[str, float]]:
    clients = await Clients.connect(config)
    per_step: dict[str, float] = {}
    gaps: dict[str, list[float]] = collections.defaultdict(list)
    try:
        async with build_worker(clients.temporal, "cpu", clients, config):
            for kind in KINDS:

                async def once(kind: StepKind = kind) -> Any:
                    return await clients.temporal.execute_workflow(
                        "LatencyProbeWorkflow",
                        LatencyProbeInput(kind=kind, steps=STEPS),
                        id=f"bench-{kind}-{uuid.uuid4()}",
                        task_queue=config.task_queue_cpu,
                    )

                await once()  # warm the worker's workflow cache and code paths
                per_step[kind] = median_ms(await timed(once, repeat=REPEAT)) / STEPS
            wid = f"bench-history-{uuid.uuid4()}"
            await clients.temporal.execute_workflow(
                "LatencyProbeWorkflow",
                LatencyProbeInput(kind="activity", steps=STEPS),
                id=wid,
                task_queue=config.task_queue_cpu,
            )
            handle = clients.temporal.get_workflow_handle(wid)
            events = [e async for e in handle.fetch_history_events()]
            for before, after in zip(events, events[1:], strict=False):
                key = (
                    EventType.Name(before.event_type).removeprefix("EVENT_TYPE_")
                    + " -> "
                    + EventType.Name(after.event_type).removeprefix("EVENT_TYPE_")
                )
                delta = after.event_time.ToDatetime() - before.event_time.ToDatetime()
                gaps[key].append(delta.total_seconds() * 1000)
    finally:
        await clients.close()
    breakdown = {k: round(sum(v) / len(v), 2) for k, v in gaps.items() if len(v) >= STEPS}
    return per_step, breakdown


async def run() -> Entry:
    entry = Entry(name="Workflow step overhead: activity vs local activity vs inline")
    variants = {
        "sqlite-wal (keel default)": {"pragmas": None, "persist": True},
        "sqlite-fsync (temporal default)": {"pragmas": [], "persist": True},
        "in-memory": {"pragmas": [], "persist": False},
    }
    breakdowns = {}
    for label, options in variants.items():
        with bench_stack(**options) as config:  # type: ignore[arg-type]
            per_step, breakdown = await _probe(config)
        breakdowns[label] = breakdown
        for kind, ms in per_step.items():
            entry.measurements[f"{label}: {kind} ms/step"] = round(ms, 3)
    default = "sqlite-wal (keel default)"
    m = entry.measurements
    entry.ratios["activity / local_activity"] = (
        m[f"{default}: activity ms/step"] / m[f"{default}: local_activity ms/step"]
    )
    entry.ratios["activity / inline"] = (
        m[f"{default}: activity ms/step"] / m[f"{default}: inline ms/step"]
    )
    entry.ratios["local_activity / inline"] = (
        m[f"{default}: local_activity ms/step"] / m[f"{default}: inline ms/step"]
    )
    entry.ratios["activity fsync / activity wal"] = (
        m["sqlite-fsync (temporal default): activity ms/step"] / m[f"{default}: activity ms/step"]
    )
    for label, breakdown in breakdowns.items():
        for gap, ms in breakdown.items():
            entry.measurements[f"{label}: history gap {gap} ms"] = ms
    entry.notes.append(
        "A plain activity costs two extra trips through the server (activity task dispatch, then "
        "a new workflow task to resume the workflow) and one more workflow activation; each "
        "trip writes history, which the file-backed dev server fsyncs. A local activity runs "
        "inside the current workflow task: no new task, no extra history writes."
    )
    return entry
