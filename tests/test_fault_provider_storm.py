"""Fault: the primary provider answers 529 (overloaded) for a whole minute while model calls
and RAG queries keep arriving. The breaker opens, the fallback model answers every request
meanwhile, and once the provider is back the breaker half-opens and closes.

The workers and the API are processes of their own; only the providers are simulated (the
harness, which speaks Anthropic's and OpenAI's wire formats).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from keel.auth import ensure_tenant
from keel.clients import Clients
from keel.contracts.guards import CircuitState, Transition
from keel.settings import Settings
from tests.conftest import Caller
from tests.support.faults import (
    NO_CACHES,
    Fleet,
    Kind,
    Outcome,
    Tally,
    ask,
    doubled_answers,
    model_call,
    rag_query,
    replies,
)
from tests.support.provider_harness import ProviderHarness
from tests.support.rag_corpus import seed
from workflows.circuit import CircuitBreakerWorkflow
from workflows.llm import circuit_workflow_id

pytestmark = pytest.mark.timeout(300)
STORM_SECONDS = 60.0
COOLDOWN_SECONDS = 5
PRIMARY = "claude-haiku-4-5"  # the cheap tier's first model; gpt-4o-mini is its fallback


async def _stream(
    http: httpx.AsyncClient,
    caller: Caller,
    kind: Kind,
    numbers: Iterator[int],
    stop: asyncio.Event,
) -> list[Outcome]:
    """Requests one after another until `stop`."""
    outcomes = []
    while not stop.is_set():
        n = next(numbers)
        if kind == "model":
            body = model_call(f"Summarise the refund policy for customers (request {n}).")
            outcomes.append(await ask(http, caller.headers, kind, "/v1/model-calls", body))
        else:
            outcomes.append(await ask(http, caller.headers, kind, "/v1/rag/query", rag_query(n)))
    return outcomes


async def _closed_again(clients: Clients, breaker_id: str, within: float) -> list[Transition]:
    """The breaker's transitions once its last one is half_open -> closed."""
    breaker = clients.temporal.get_workflow_handle(breaker_id)
    deadline = time.monotonic() + within
    transitions: list[Transition] = []
    while time.monotonic() < deadline:
        state = await breaker.query(CircuitBreakerWorkflow.status)
        transitions = await breaker.query(CircuitBreakerWorkflow.history)
        assert isinstance(state, CircuitState)
        last = transitions[-1] if transitions else None
        if state.state == "closed" and last is not None and last.to_state == "closed":
            return transitions
        await asyncio.sleep(0.5)
    raise AssertionError(f"the breaker did not close: {transitions}")


async def test_a_minute_of_529s_is_served_by_the_fallback_and_the_breaker_recovers(
    clients: Clients,
    gw_settings: Settings,
    harness: ProviderHarness,
    caller: Caller,
    tmp_path: Path,
) -> None:
    await seed(clients.engine, await ensure_tenant(clients.engine, caller.tenant))
    harness.reply_fn = replies()
    api_env = {
        **NO_CACHES,
        "KEEL_CIRCUIT__FAILURE_THRESHOLD": "3",
        "KEEL_CIRCUIT__COOLDOWN": f"PT{COOLDOWN_SECONDS}S",
    }
    fleet = await Fleet(gw_settings, tmp_path, api_env).start()
    tally = Tally("provider 529 for 60 s under model calls and RAG queries")
    numbers = itertools.count()
    try:
        async with httpx.AsyncClient(base_url=fleet.url, timeout=120) as http:
            # Before: the primary answers (and the workers are warm).
            warm = [
                await ask(http, caller.headers, "model", "/v1/model-calls", model_call("Hi.")),
                await ask(http, caller.headers, "rag", "/v1/rag/query", rag_query(-1)),
            ]
            assert [o.result.get("provider") for o in warm] == ["anthropic"] * 2, warm

            harness.outage("anthropic", "overloaded")
            to_primary = len(harness.requests_for("anthropic"))
            stop = asyncio.Event()
            streams = [
                asyncio.create_task(_stream(http, caller, kind, numbers, stop))
                for kind in ("model", "rag")
            ]
            await asyncio.sleep(STORM_SECONDS)
            harness.outage("anthropic", None)
            storm_ended = time.monotonic()
            to_primary = len(harness.requests_for("anthropic")) - to_primary

            transitions = await _closed_again(
                clients, circuit_workflow_id(gw_settings.circuit_scope, PRIMARY), 90
            )
            stop.set()
            streamed = [o for stream in streams for o in await stream]
            after = await ask(http, caller.headers, "model", "/v1/model-calls", model_call("Back?"))
    finally:
        fleet.stop()

    tally.add(*warm, *streamed, after)
    tally.duplicated = await doubled_answers(clients, tally)
    tally.check()
    assert tally.count("failed") == 0  # nothing failed that the fallback could serve
    during = [o for o in streamed if o.ended < storm_ended]
    assert len(during) >= 10 and {o.result["provider"] for o in during} == {"openai"}
    # The breaker opened, probed while the storm lasted, and closed after it.
    moves = [(t.from_state, t.to_state) for t in transitions]
    assert moves[0] == ("closed", "open") and moves[-1] == ("half_open", "closed"), moves
    assert set(moves[1:-1]) <= {("open", "half_open"), ("half_open", "open")}, moves
    skipped = [
        o
        for o in during
        if o.kind == "model" and o.result["attempts"][0]["outcome"] == "circuit_open"
    ]
    assert skipped, "no call was spared the open primary"
    probes = moves.count(("open", "half_open"))
    print(
        f"storm: {len(during)} requests answered during it, {to_primary} reached the primary, "
        f"{len(skipped)} model calls skipped it, {probes} half-open probes, moves {moves}"
    )
    # Every request the primary saw came before the breaker first opened (at most a direct
    # attempt and three workflow attempts per stream) or was one of a probe's attempts.
    assert to_primary <= 4 * 2 + 3 * probes
    assert after.result["provider"] == "anthropic"
