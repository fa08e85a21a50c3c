"""Run routes: API keys decide the tenant, and a tenant never reaches another's runs."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from temporalio.client import WorkflowHandle
from temporalio.worker import Worker

from keel.clients import Clients
from keel.contracts.diagnostics import PingInput
from keel.settings import Settings
from tests.conftest import Caller
from workflows.common import run_attributes
from workflows.diagnostics import PingWorkflow


async def _start_ping(
    clients: Clients, settings: Settings, tenant: str, queues: list[str]
) -> WorkflowHandle[PingWorkflow, object]:
    return await clients.temporal.start_workflow(
        PingWorkflow.run,
        PingInput(queues=queues),
        id=f"ping-{uuid.uuid4()}",
        task_queue=settings.task_queue_cpu,
        search_attributes=run_attributes(tenant, "diagnostics"),
    )


async def test_v1_routes_require_a_valid_key(api: httpx.AsyncClient) -> None:
    missing = await api.get("/v1/runs")
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "Unauthorized"
    assert "Bearer" in missing.json()["error"]["message"]

    malformed = await api.get("/v1/runs", headers={"Authorization": "Token abc"})
    assert malformed.status_code == 401
    assert "malformed" in malformed.json()["error"]["message"]

    unknown = await api.get("/v1/runs", headers={"Authorization": "Bearer keel_nope"})
    assert unknown.status_code == 401
    assert "unknown" in unknown.json()["error"]["message"]


async def test_owner_sees_completed_run_other_tenant_gets_404(
    api: httpx.AsyncClient,
    clients: Clients,
    settings: Settings,
    workers: list[Worker],
    caller: Caller,
    other_caller: Caller,
) -> None:
    handle = await _start_ping(clients, settings, caller.tenant, [settings.task_queue_cpu])
    await handle.result()

    mine = await api.get(f"/v1/runs/{handle.id}", headers=caller.headers)
    assert mine.status_code == 200
    body = mine.json()
    assert body["status"] == "completed"
    assert body["kind"] == "PingWorkflow"
    assert body["result"]["workers"][0]["queue"] == settings.task_queue_cpu
    assert body["ui_url"].endswith(f"/workflows/{handle.id}/{body['run_id']}/history")

    for method, path in [
        ("GET", f"/v1/runs/{handle.id}"),
        ("POST", f"/v1/runs/{handle.id}/cancel"),
        ("POST", f"/v1/runs/{handle.id}/signals/approve"),
    ]:
        theirs = await api.request(method, path, headers=other_caller.headers)
        assert theirs.status_code == 404, (method, path)
        assert theirs.json()["error"]["type"] == "NotFound"

    # Visibility is eventually consistent: the listing catches up within moments.
    for _ in range(50):
        listed = (await api.get("/v1/runs", headers=caller.headers)).json()["runs"]
        if any(r["id"] == handle.id for r in listed):
            break
        await asyncio.sleep(0.1)
    assert [r["id"] for r in listed] == [handle.id]
    others = (await api.get("/v1/runs", headers=other_caller.headers)).json()["runs"]
    assert all(r["id"] != handle.id for r in others)


async def test_cancel_and_signal_a_running_run(
    api: httpx.AsyncClient,
    clients: Clients,
    settings: Settings,
    workers: list[Worker],
    caller: Caller,
) -> None:
    # No worker polls this queue, so the run waits on its activity until cancelled.
    handle = await _start_ping(clients, settings, caller.tenant, [f"nobody-{uuid.uuid4()}"])

    signalled = await api.post(
        f"/v1/runs/{handle.id}/signals/approve", headers=caller.headers, json={"note": "ok"}
    )
    assert signalled.status_code == 202
    assert signalled.json() == {"id": handle.id, "signal": "approve", "accepted": True}

    running = await api.get(f"/v1/runs/{handle.id}", headers=caller.headers)
    assert running.json()["status"] == "running"

    cancelled = await api.post(f"/v1/runs/{handle.id}/cancel", headers=caller.headers)
    assert cancelled.status_code == 202
    for _ in range(100):
        state = (await api.get(f"/v1/runs/{handle.id}", headers=caller.headers)).json()
        if state["status"] != "running":
            break
        await asyncio.sleep(0.1)
    assert state["status"] == "canceled"

    again = await api.post(f"/v1/runs/{handle.id}/cancel", headers=caller.headers)
    assert again.status_code == 409
    assert again.json()["error"]["details"] == {"status": "canceled"}


async def test_unknown_run_and_bad_ids(api: httpx.AsyncClient, caller: Caller) -> None:
    assert (await api.get("/v1/runs/does-not-exist", headers=caller.headers)).status_code == 404
    bad = await api.get("/v1/runs/bad%20id", headers=caller.headers)
    assert bad.status_code == 422
    assert bad.json()["error"]["type"] == "InvalidInput"
    bad_signal = await api.post("/v1/runs/x/signals/Not-A-Signal", headers=caller.headers)
    assert bad_signal.status_code == 422


async def test_request_body_limit(
    api: httpx.AsyncClient, caller: Caller, settings: Settings
) -> None:
    too_big = b"x" * (settings.max_request_bytes + 1)
    response = await api.post("/v1/runs/x/signals/approve", headers=caller.headers, content=too_big)
    assert response.status_code == 413
    assert response.json()["error"]["details"]["limit_bytes"] == settings.max_request_bytes
