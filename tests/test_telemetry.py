"""Logs written inside an activity carry its workflow id, run id, activity name and tenant."""

from __future__ import annotations

import io
import json
import logging

from temporalio import activity
from temporalio.testing import ActivityEnvironment

from keel.telemetry import activity_context, configure_logging, get_logger


@activity.defn(name="log_something")
async def log_something(tenant: str) -> None:
    with activity_context(tenant):
        get_logger("keel.test").info("hello from an activity", detail=42)


async def test_activity_logs_are_json_with_run_context() -> None:
    configure_logging(level="INFO", json=True)
    root = logging.getLogger()
    captured = io.StringIO()
    handler = logging.StreamHandler(captured)
    handler.setFormatter(root.handlers[0].formatter)  # Keel's JSON formatter
    root.addHandler(handler)
    try:
        await ActivityEnvironment().run(log_something, "acme")
    finally:
        root.removeHandler(handler)
    lines = [line for line in captured.getvalue().splitlines() if "hello from" in line]
    assert lines, "no log line captured"
    record = json.loads(lines[-1])
    assert record["event"] == "hello from an activity"
    assert record["tenant"] == "acme"
    assert record["activity"] == "unknown"  # ActivityEnvironment's default activity type
    assert record["workflow_id"] == "test"
    assert record["detail"] == 42
    assert "timestamp" in record and record["level"] == "info"
