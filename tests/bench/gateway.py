"""Bench: the gateway's cache paths and overhead, each next to its bare baseline.

- exact-hit lookup (activity code: Redis GET + ledger row) vs a bare Redis GET;
- semantic-hit lookup (embed + pgvector + key-term guard + ledger) vs embed + vector query;
- a whole ModelCallWorkflow answered from the exact cache;
- a gateway call that reaches the provider vs the bare SDK call to the same local server;
- the semantic cache's wrong-hit rate on the labelled pair set.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from anthropic import AsyncAnthropic
from pydantic import SecretStr
from sqlalchemy import text
from temporalio.testing import ActivityEnvironment

from activities.gateway import GatewayActivities
from activities.semantic_cache import SemanticCacheActivities, same_meaning_guard
from keel.auth import create_key, ensure_tenant
from keel.clients import Clients
from keel.contracts.gateway import CacheProbe, CacheWrite, CallContext, ModelCall, ModelCallRequest
from keel.contracts.llm import ChatMessage
from keel.runs import gateway_config
from tests.bench.common import Entry, bench_stack, median_ms
from tests.support.provider_harness import ProviderHarness
from tests.support.worker_process import api_process
from worker import build_worker, shared_embedder

REPEAT = 200
PAIRS = Path(__file__).resolve().parents[2] / "evals" / "semantic_cache" / "pairs.jsonl"


async def _loop(fn: Any, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - started)
    return samples


async def _paired(fn: Any, baseline: Any, repeat: int) -> tuple[list[float], list[float]]:
    """`fn` and `baseline` timed in turn, so both see the same moments of a noisy machine."""
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for timed, out in ((baseline, samples[1]), (fn, samples[0])):
            started = time.perf_counter()
            await timed()
            out.append(time.perf_counter() - started)
    return samples


def wrong_hit_rates(threshold: float = 0.95) -> dict[str, float]:
    """Hit rates on the labelled pairs, with and without the key-term guard."""
    pairs = [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()]
    embedder = shared_embedder("onnx")
    first = embedder.embed([p["a"] for p in pairs])
    second = embedder.embed([p["b"] for p in pairs])
    similarity = (first * second).sum(axis=1)
    out: dict[str, float] = {}
    for guarded in (False, True):
        hits = [
            bool(s >= threshold) and (not guarded or same_meaning_guard(p["b"], p["a"]))
            for s, p in zip(similarity, pairs, strict=True)
        ]
        para = [h for h, p in zip(hits, pairs, strict=True) if p["label"] == "paraphrase"]
        near = [h for h, p in zip(hits, pairs, strict=True) if p["label"] == "different"]
        label = "with key-term guard" if guarded else "cosine only"
        out[f"{label}: paraphrases served from cache %"] = round(100 * sum(para) / len(para), 1)
        out[f"{label}: near-miss questions wrongly served %"] = round(
            100 * sum(near) / len(near), 1
        )
        out[f"{label}: wrong answers among hits %"] = round(100 * sum(near) / max(1, sum(hits)), 1)
    return out


async def _through_http(
    clients: Clients, settings: Any, question: str, bare: Any
) -> dict[str, list[float]]:
    """`POST /v1/model-calls` over real HTTP to the API in its own process: caches off, then
    a new question each time (a real miss: exact GET, semantic lookup, spend, breaker,
    attempt, ledger, stores), each call in turn with the bare SDK call `bare`; and
    `GET /healthz` beside them."""
    key = await create_key(clients.engine, "bench")
    headers = {"Authorization": f"Bearer {key}"}

    def body(content: str, cache: bool) -> dict[str, Any]:
        return {
            "call": {
                "messages": [{"role": "user", "content": content}],
                "model": "claude-haiku-4-5",
                "max_tokens": 32,
                "cache": cache,
            },
            "feature": "bench",
        }

    extra = {
        "KEEL_ANTHROPIC_API_KEY": settings.anthropic_api_key.get_secret_value(),
        "KEEL_ANTHROPIC_BASE_URL": settings.anthropic_base_url,
    }
    log = settings.data_dir / "api.log"
    with api_process(settings, log, extra) as base:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            for _ in range(5):  # warm connections, the embedder, the SDK client
                await http.post("/v1/model-calls", json=body(question, True), headers=headers)
            off, bare_off = await _paired(
                lambda: http.post("/v1/model-calls", json=body(question, False), headers=headers),
                bare,
                REPEAT // 2,
            )

            async def miss() -> None:
                asked = f"{question} Reference {uuid.uuid4().hex[:8]}."
                answer = await http.post("/v1/model-calls", json=body(asked, True), headers=headers)
                assert answer.json()["result"]["cache_layer"] == "none", answer.text

            fresh, bare_miss = await _paired(miss, bare, REPEAT // 2)
            health = await _loop(lambda: http.get("/healthz"), REPEAT // 2)
    return {
        "off": off,
        "bare_off": bare_off,
        "miss": fresh,
        "bare_miss": bare_miss,
        "health": health,
    }


async def run() -> Entry:
    entry = Entry(name="Gateway: cache paths and overhead vs bare baselines")
    with bench_stack() as settings, ProviderHarness() as harness:
        settings = settings.model_copy(
            update={
                "anthropic_api_key": SecretStr("bench"),
                "anthropic_base_url": harness.anthropic_base_url,
            }
        )
        clients = await Clients.connect(settings)
        try:
            tenant_id = await ensure_tenant(clients.engine, "bench")
            context = CallContext(tenant="bench", tenant_id=str(tenant_id), feature="bench")
            env = ActivityEnvironment()
            gateway = GatewayActivities(
                engine=clients.engine,
                redis=clients.redis,
                temporal=clients.temporal,
                providers={},
                settings=settings,
            )
            embedder = shared_embedder(settings.embedder)
            semantic = SemanticCacheActivities(engine=clients.engine, embedder=embedder)
            question = "How many vacation days do new employees get in their first year?"
            write = CacheWrite(
                context=context,
                key=f"keel:exact:{uuid.uuid4().hex}",
                model_scope="tier:cheap",
                query_text=question,
                text="25 days.",
                model="bench",
                ttl_seconds=3600,
            )
            await env.run(gateway.exact_cache_store, write)
            await env.run(semantic.semantic_cache_store, write)
            probe = CacheProbe(
                context=context, key=write.key, model_scope="tier:cheap", query_text=question
            )

            bare_get = await _loop(lambda: clients.redis.get(write.key), REPEAT)
            exact = await _loop(lambda: env.run(gateway.exact_cache_lookup, probe), REPEAT)

            async def embed_and_query() -> Any:
                vector = embedder.embed([question])[0]
                async with clients.engine.connect() as conn:
                    return (
                        await conn.execute(
                            text(
                                "SELECT response FROM semantic_cache "
                                "ORDER BY embedding <=> :v LIMIT 5"
                            ),
                            {"v": str([float(x) for x in vector])},
                        )
                    ).all()

            bare_semantic = await _loop(embed_and_query, 50)
            semantic_hit = await _loop(lambda: env.run(semantic.semantic_cache_lookup, probe), 50)
            assert (await env.run(semantic.semantic_cache_lookup, probe)) is not None

            entry.measurements["bare Redis GET ms (median)"] = median_ms(bare_get)
            entry.measurements["exact-hit lookup ms (median)"] = median_ms(exact)
            entry.measurements["embed + vector query ms (median)"] = median_ms(bare_semantic)
            entry.measurements["semantic-hit lookup ms (median)"] = median_ms(semantic_hit)
            entry.ratios["exact-hit lookup / bare Redis GET"] = median_ms(exact) / median_ms(
                bare_get
            )
            entry.ratios["semantic-hit lookup / embed + vector query"] = median_ms(
                semantic_hit
            ) / median_ms(bare_semantic)

            # End to end through Temporal: a hit, a provider call, and the bare SDK call.
            config = gateway_config(settings)
            call = ModelCall(
                messages=[ChatMessage(role="user", content=question)],
                model="claude-haiku-4-5",
                max_tokens=32,
            )
            sdk = AsyncAnthropic(
                api_key="bench", base_url=harness.anthropic_base_url, max_retries=0
            )

            async def bare() -> Any:
                return await sdk.messages.create(
                    model="claude-haiku-4-5",
                    max_tokens=32,
                    messages=[{"role": "user", "content": question}],
                )

            async with (
                build_worker(clients.temporal, "cpu", clients, settings),
                build_worker(clients.temporal, "gpu", clients, settings),
            ):

                async def workflow_call(c: ModelCall) -> Any:
                    return await clients.temporal.execute_workflow(
                        "ModelCallWorkflow",
                        ModelCallRequest(call=c, context=context, config=config),
                        id=f"bench-{uuid.uuid4()}",
                        task_queue=settings.task_queue_cpu,
                    )

                await workflow_call(call)  # warm, and fill the cache
                hit = await _loop(lambda: workflow_call(call), 20)
                uncached = call.model_copy(update={"cache": False})
                miss = await _loop(lambda: workflow_call(uncached), 20)
                api = await _through_http(clients, settings, question, bare)

            bare_sdk = await _loop(bare, 20)
            await sdk.close()
            entry.measurements["ModelCallWorkflow, exact hit, ms (median)"] = median_ms(hit)
            entry.measurements["ModelCallWorkflow, provider call, ms (median)"] = median_ms(miss)
            entry.measurements["bare SDK call to the same server ms (median)"] = median_ms(bare_sdk)
            entry.ratios["gateway workflow call / bare SDK call"] = median_ms(miss) / median_ms(
                bare_sdk
            )
            entry.measurements["GET /healthz on the same server ms (median)"] = median_ms(
                api["health"]
            )
            # Each API call was timed in turn with a bare SDK call: the overhead is the
            # difference of their medians over the same stretch of the machine.
            for case, label, called in (
                ("off", "cache off", "cache off"),
                ("miss", "cache miss", "new question (cache miss)"),
            ):
                keel_ms, bare_ms = median_ms(api[case]), median_ms(api[f"bare_{case}"])
                entry.measurements[f"POST /v1/model-calls, {called}, ms (median)"] = keel_ms
                entry.measurements[f"bare SDK call in turn with those ({label}), ms (median)"] = (
                    bare_ms
                )
                entry.measurements[f"Keel overhead over the bare SDK call, {label}, ms (p50)"] = (
                    keel_ms - bare_ms
                )
            entry.ratios["POST /v1/model-calls (cache off) / bare SDK call"] = median_ms(
                api["off"]
            ) / median_ms(api["bare_off"])
            entry.ratios["workflow exact hit / workflow provider call"] = median_ms(
                hit
            ) / median_ms(miss)
        finally:
            await clients.close()
    entry.measurements.update(wrong_hit_rates())
    entry.notes.append(
        "Wrong-hit rates use evals/semantic_cache/pairs.jsonl (110 paraphrases, 125 near-miss "
        "questions built to fool a similarity cache) at cosine >= 0.95."
    )
    entry.notes.append(
        "A gateway call is a workflow: its overhead is Temporal's (a workflow start, local "
        "activities for spend/cache/breaker, one activity for the provider), paid for with "
        "durability, retries visible in history, budgets and a ledger row per attempt."
    )
    return entry
