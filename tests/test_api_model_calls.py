"""`POST /v1/model-calls`, `GET /v1/costs` and per-key token limits, through the real stack."""

from __future__ import annotations

from typing import Any

import httpx
from temporalio.worker import Worker

from keel.auth import create_key
from keel.clients import Clients
from tests.conftest import Caller

QUESTION: dict[str, Any] = {
    "call": {
        "messages": [{"role": "user", "content": "Summarise: Keel runs durable agent workflows."}],
        "tier": "cheap",
        "max_tokens": 64,
    },
    "feature": "summaries",
}


async def test_model_call_answers_and_costs_aggregate_it(
    api: httpx.AsyncClient, workers: list[Worker], caller: Caller
) -> None:
    first = await api.post("/v1/model-calls", json=QUESTION, headers=caller.headers)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["result"]["ok"] is True
    assert body["result"]["model"] == "local-extractive"  # no provider key: the offline model
    assert body["result"]["route"]["tier"] == "cheap"

    again = await api.post("/v1/model-calls", json=QUESTION, headers=caller.headers)
    assert again.json()["result"]["cache_layer"] == "exact"

    # One successful attempt is served by the API itself; its detail comes from the ledger.
    assert body["id"].startswith("model-call-direct-")
    run = await api.get(f"/v1/runs/{body['id']}", headers=caller.headers)
    assert run.json()["status"] == "completed"
    assert run.json()["kind"] == "served-by-api"
    assert run.json()["feature"] == "summaries"

    report = (await api.get("/v1/costs", headers=caller.headers)).json()
    assert report["tenant"] == caller.tenant
    assert report["calls"] == 2
    assert report["cache_hits"] == 1
    layers = {(r["feature"], r["model"], r["cache_layer"]): r["calls"] for r in report["rows"]}
    assert layers == {
        ("summaries", "local-extractive", "none"): 1,
        ("summaries", "local-extractive", "exact"): 1,
    }


async def test_costs_reject_an_inverted_range(api: httpx.AsyncClient, caller: Caller) -> None:
    response = await api.get(
        "/v1/costs", params={"since": "2026-02-01", "until": "2026-01-01"}, headers=caller.headers
    )
    assert response.status_code == 422
    assert "since" in response.json()["error"]["message"]


async def test_token_limit_per_minute_refuses_with_retry_after(
    api: httpx.AsyncClient, workers: list[Worker], clients: Clients, tenant: str
) -> None:
    limited = Caller(tenant, await create_key(clients.engine, tenant, tokens_per_minute=5))
    first = await api.post(
        "/v1/model-calls",
        json={**QUESTION, "call": {**QUESTION["call"], "cache": False}},
        headers=limited.headers,
    )
    assert first.status_code == 200, first.text
    refused = await api.post("/v1/model-calls", json=QUESTION, headers=limited.headers)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["type"] == "RateLimited"
    assert error["details"]["limit"] == "tokens_per_minute"
    assert "tokens_per_minute" in error["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60


async def test_invalid_model_call_is_a_typed_422(api: httpx.AsyncClient, caller: Caller) -> None:
    response = await api.post(
        "/v1/model-calls",
        json={"call": {"messages": []}, "feature": "Bad Feature"},
        headers=caller.headers,
    )
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "InvalidInput"
    assert "feature" in response.json()["error"]["message"]


async def test_unknown_model_is_refused_before_any_run_starts(
    api: httpx.AsyncClient, caller: Caller
) -> None:
    body = {**QUESTION, "call": {**QUESTION["call"], "model": "gpt-imaginary"}}
    response = await api.post("/v1/model-calls", json=body, headers=caller.headers)
    assert response.status_code == 422
    assert "unknown model 'gpt-imaginary'" in response.json()["error"]["message"]
    runs = (await api.get("/v1/runs", headers=caller.headers)).json()["runs"]
    assert runs == []
