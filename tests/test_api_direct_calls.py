"""`POST /v1/model-calls` served by the API on its happy path, durable everywhere else.

Real Temporal, Postgres and Redis; the real `anthropic`/`openai` SDK clients against the
provider harness.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import text
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from api.main import create_app
from keel.clients import Clients
from keel.settings import Settings
from tests.conftest import Caller
from tests.support.provider_harness import ProviderHarness


@pytest.fixture
async def gw_api(clients: Clients, gw_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(gw_settings, clients=clients)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://k") as c,
    ):
        yield c


def _body(question: str, **call: object) -> dict[str, object]:
    return {
        "call": {"messages": [{"role": "user", "content": question}], **call},
        "feature": "direct",
    }


async def _ledger(clients: Clients, workflow_id: str) -> list[tuple[str, str, str]]:
    async with clients.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT provider, status, cache_layer FROM llm_calls WHERE workflow_id = :w "
                "ORDER BY created_at"
            ),
            {"w": workflow_id},
        )
        return [(r[0], r[1], r[2]) for r in rows]


async def _has_workflow(clients: Clients, workflow_id: str) -> bool:
    try:
        await clients.temporal.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        assert exc.status == RPCStatusCode.NOT_FOUND
        return False
    return True


async def test_a_successful_first_attempt_is_answered_without_a_workflow(
    gw_api: httpx.AsyncClient, clients: Clients, caller: Caller, harness: ProviderHarness
) -> None:
    question = f"What is the refund window for annual plans? ({uuid.uuid4().hex[:6]})"
    response = await gw_api.post(
        "/v1/model-calls", json=_body(question, model="claude-haiku-4-5"), headers=caller.headers
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["result"]["ok"] and body["result"]["provider"] == "anthropic"
    assert body["result"]["cost_usd"] > 0
    assert body["id"].startswith("model-call-direct-")
    assert not await _has_workflow(clients, body["id"])  # no worker was even running
    assert len(harness.requests_for("anthropic")) == 1
    # The attempt is in the ledger under the id the caller got, before the answer was sent.
    assert await _ledger(clients, body["id"]) == [("anthropic", "ok", "none")]
    costs = (await gw_api.get("/v1/costs", headers=caller.headers)).json()
    assert costs["total_usd"] == pytest.approx(body["result"]["cost_usd"])

    again = await gw_api.post(
        "/v1/model-calls", json=_body(question, model="claude-haiku-4-5"), headers=caller.headers
    )
    assert again.json()["result"]["cache_layer"] == "exact"
    assert len(harness.requests_for("anthropic")) == 1  # the hit reached no provider
    assert await _ledger(clients, again.json()["id"]) == [("cache", "ok", "exact")]


async def test_a_failed_first_attempt_hands_over_to_the_durable_run(
    gw_api: httpx.AsyncClient,
    gw_workers: list[Worker],
    clients: Clients,
    caller: Caller,
    harness: ProviderHarness,
) -> None:
    harness.fail_next("anthropic", "server_error", times=1)
    response = await gw_api.post(
        "/v1/model-calls",
        json=_body("Summarise the travel policy.", model="claude-haiku-4-5", cache=False),
        headers=caller.headers,
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["result"]["ok"] and body["result"]["provider"] == "anthropic"
    # The retry ran as a workflow, whose history shows it; the direct attempt kept its row.
    assert not body["id"].startswith("model-call-direct-")
    assert await _has_workflow(clients, body["id"])
    assert await _ledger(clients, body["id"]) == [("anthropic", "ok", "none")]
    async with clients.engine.connect() as conn:
        failed = (
            await conn.execute(
                text(
                    "SELECT count(*) FROM llm_calls c JOIN tenants t ON t.id = c.tenant_id "
                    "WHERE t.name = :t AND c.status = 'error' "
                    "AND c.workflow_id LIKE 'model-call-direct-%'"
                ),
                {"t": caller.tenant},
            )
        ).scalar_one()
    assert failed == 1
    assert len(harness.requests_for("anthropic")) == 2  # one direct, one durable: no more


async def test_budget_refusals_and_async_requests_take_the_durable_path(
    gw_api: httpx.AsyncClient,
    gw_workers: list[Worker],
    clients: Clients,
    caller: Caller,
    harness: ProviderHarness,
) -> None:
    refused = await gw_api.post(
        "/v1/model-calls",
        json={
            **_body("Write a long essay about our policies.", model="claude-haiku-4-5"),
            "budget": {"max_usd": 0.0000001},
        },
        headers=caller.headers,
    )
    assert refused.status_code == 200, refused.text
    assert refused.json()["result"]["stop_reason"] == "budget_exhausted"
    assert await _has_workflow(clients, refused.json()["id"])

    started = await gw_api.post(
        "/v1/model-calls",
        json={**_body("Hello there", model="claude-haiku-4-5"), "wait_seconds": 0},
        headers=caller.headers,
    )
    assert started.status_code == 202
    assert await _has_workflow(clients, started.json()["id"])
    assert harness.requests_for("openai") == []
