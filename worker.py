"""Run a Keel worker: `python worker.py --queue cpu|gpu`.

The cpu worker hosts every workflow and the I/O-bound activities; the gpu worker hosts the
model-bound activities (embedding, reranking) and uses CUDA when present, the CPU otherwise.
Activities are methods of classes built here, once, with their clients.

On SIGINT/SIGTERM the worker stops polling and gives running activities
`graceful_shutdown_timeout` to finish; long activities heartbeat, so one that cannot finish
in time is retried elsewhere from its last checkpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from typing import Any, Literal

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from keel.clients import Clients
from keel.settings import Settings, settings
from keel.telemetry import configure_logging, get_logger
from keel.tracing import process_tracer_provider

QueueKind = Literal["cpu", "gpu"]
GRACEFUL_SHUTDOWN = timedelta(seconds=30)

log = get_logger("keel.worker")


def compute_device() -> str:
    """'cuda' when an NVIDIA GPU is usable from this process, else 'cpu'."""
    try:
        import onnxruntime

        if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            return "cuda"
    except ImportError:
        pass
    try:
        import torch  # type: ignore[import-not-found, unused-ignore]

        if torch.cuda.is_available():
            return "cuda"
    except ImportError:
        pass
    return "cpu"


@dataclass
class Registry:
    """What one queue's worker hosts."""

    workflows: list[type] = field(default_factory=list)
    activities: list[Any] = field(default_factory=list)


def shared_embedder(kind: str, lanes: int = 0) -> Any:
    """One embedder per process and kind: the model loads once, however many workers.

    `lanes` (`KEEL_EMBED_LANES`) applies to the onnx embedder; 0 is one a core.
    """
    # Cached on positional arguments, so `shared_embedder("onnx")` and a worker's
    # `shared_embedder("onnx", 0)` are one model, not two.
    return _load_embedder(kind, lanes)


@lru_cache(maxsize=4)
def _load_embedder(kind: str, lanes: int) -> Any:
    from keel.embedding import make_embedder

    return make_embedder(kind, lanes=lanes) if kind == "onnx" else make_embedder(kind)


# Libraries whose objects the activities hold and whose finalisers import lazily: redis-py's
# connection pool imports its metrics recorder (and OpenTelemetry) from `__del__`. The collector
# may free such an object on a workflow thread mid-activation; passed through, that import uses
# the modules already loaded instead of loading them again inside the sandbox. Workflows
# themselves never import these (tests/test_workflow_sandbox.py).
PASSED_THROUGH = ("redis", "opentelemetry")


def workflow_runner() -> SandboxedWorkflowRunner:
    """The workflow sandbox the workers and the replayers run: Temporal's, with `PASSED_THROUGH`."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSED_THROUGH)
    )


def workflow_classes() -> list[type]:
    """Every workflow Keel runs (all hosted by the cpu queue); also what replay tests load."""
    from workflows.agents import AgentTeamWorkflow
    from workflows.circuit import CircuitBreakerWorkflow
    from workflows.diagnostics import LatencyProbeWorkflow, PingWorkflow
    from workflows.document_jobs import DocumentAgentWorkflow, DocumentJobWorkflow
    from workflows.ingest import IngestWorkflow
    from workflows.ingest_batch import IngestBatchWorkflow
    from workflows.llm import ModelCallWorkflow
    from workflows.rag import RagQueryWorkflow
    from workflows.safety_screen import SafetyScreenWorkflow

    return [
        PingWorkflow,
        LatencyProbeWorkflow,
        ModelCallWorkflow,
        CircuitBreakerWorkflow,
        RagQueryWorkflow,
        IngestWorkflow,
        IngestBatchWorkflow,
        AgentTeamWorkflow,
        DocumentJobWorkflow,
        DocumentAgentWorkflow,
        SafetyScreenWorkflow,
    ]


def activity_methods(*hosts: object) -> list[Any]:
    """Every `@activity.defn` method of each host object, bound to it: a class's activities
    are registered by building the class, so none can be forgotten or listed twice."""
    found: list[Any] = []
    for host in hosts:
        for name in sorted(dir(type(host))):
            member = getattr(type(host), name, None)
            # What `@activity.defn` leaves on the function it registers.
            if getattr(member, "__temporal_activity_definition", None) is not None:
                found.append(getattr(host, name))
    return found


def registry(kind: QueueKind, clients: Clients, config: Settings) -> Registry:
    """Workflows and activities for a queue, activities bound to their clients."""
    from activities.diagnostics import DiagnosticsActivities, checksum_step

    if kind == "gpu":
        from activities.ingest_embed import IngestEmbedActivities
        from activities.rag.activities import RagModelActivities
        from activities.rag.rerank import shared_cross_encoders
        from activities.semantic_cache import SemanticCacheActivities

        embedder = shared_embedder(config.embedder, config.embed_lanes)
        return Registry(
            activities=activity_methods(
                DiagnosticsActivities(device=compute_device()),
                SemanticCacheActivities(engine=clients.engine, embedder=embedder),
                RagModelActivities(
                    engine=clients.engine,
                    embedder=embedder,
                    cross_encoders=shared_cross_encoders(),
                ),
                IngestEmbedActivities(engine=clients.engine, embedder=embedder),
            )
        )

    from activities.agent_tools import AgentToolActivities
    from activities.agents import AgentActivities
    from activities.gateway import GatewayActivities
    from activities.ingest import IngestActivities
    from activities.ingest_jobs import IngestJobActivities
    from activities.providers import build_providers
    from activities.rag.activities import RagActivities
    from activities.redteam import RedTeamActivities
    from activities.safety_checks import SafetyActivities

    gateway = GatewayActivities(
        engine=clients.engine,
        redis=clients.redis,
        temporal=clients.temporal,
        providers=build_providers(config, timeout=config.provider_timeout_seconds),
        settings=config,
    )
    return Registry(
        workflows=workflow_classes(),
        activities=[
            checksum_step,
            *activity_methods(
                DiagnosticsActivities(device="cpu"),
                gateway,
                RagActivities(engine=clients.engine),
                SafetyActivities(),
                RedTeamActivities(),
                IngestActivities(engine=clients.engine, redis=clients.redis, settings=config),
                IngestJobActivities(engine=clients.engine),
                AgentActivities(engine=clients.engine),
                AgentToolActivities(engine=clients.engine),
            ),
        ],
    )


def build_worker(
    client: Client,
    kind: QueueKind,
    clients: Clients,
    config: Settings,
    *,
    task_queue: str | None = None,
) -> Worker:
    """A worker for `kind`, on `task_queue` (default: the queue named in settings)."""
    hosted = registry(kind, clients, config)
    queue = task_queue or (config.task_queue_cpu if kind == "cpu" else config.task_queue_gpu)
    slots = 4 if kind == "gpu" else 32
    return Worker(
        client,
        task_queue=queue,
        workflows=hosted.workflows,
        workflow_runner=workflow_runner(),
        activities=hosted.activities,
        # Synchronous activities (model inference, parsing) run in this pool; async ones on
        # the event loop. The gpu queue takes few at once: they share one model and device.
        activity_executor=ThreadPoolExecutor(max_workers=slots),
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        max_concurrent_activities=slots,
    )


async def run(kind: QueueKind, config: Settings) -> None:
    # Traces, when the OTEL_* variables ask for them: the client's interceptor (inherited by
    # the worker) and a span around each provider call.
    os.environ.setdefault("OTEL_SERVICE_NAME", f"keel-worker-{kind}")
    process_tracer_provider()
    if config.worker_metrics_port:
        from prometheus_client import start_http_server

        start_http_server(config.worker_metrics_port)
    clients = await Clients.connect(config)
    worker = build_worker(clients.temporal, kind, clients, config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("worker started", queue=worker.task_queue, kind=kind)
    async with worker:
        await stop.wait()
        log.info("worker stopping; letting running activities finish", queue=worker.task_queue)
    await clients.close()
    log.info("worker stopped", queue=worker.task_queue)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run a Keel worker.")
    parser.add_argument(
        "--queue",
        choices=["cpu", "gpu"],
        default="cpu",
        help="cpu: workflows + I/O activities; gpu: embedding/reranking (CUDA if present)",
    )
    args = parser.parse_args(argv)
    config = settings()
    configure_logging(level=config.log_level, json=config.log_json)
    asyncio.run(run(args.queue, config))


if __name__ == "__main__":
    main()
