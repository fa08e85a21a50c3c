"""Bench: document ingestion end to end vs the bare model on the same chunks, and worker memory.

A mixed corpus (short files of every format plus multi-chunk documents) is staged and run as
one IngestWorkflow on separate cpu and gpu worker processes, exactly as deployed. The same
chunk texts are also embedded with bare `embed_windows_batch` calls in this process: the ratio
says how much of the model's throughput survives the orchestration (staging, parsing, chunking,
activities, child workflows, upserts). The bare encode brackets the job: half its sample runs
before the job and half after, so a machine that drifts faster or slower over the ~20 minutes
moves both sides alike (the chunk texts are cut in this process first, exactly as the cpu
worker cuts them, and checked equal to what the job stored). Peak resident memory of each
worker process is sampled while the job runs, and the CPU time each process of the stack spends
on the job is reported beside the bare encode's: on a machine the model fills, the other
processes' CPU time is what end to end loses.
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import text

from activities.embedding_windows import embed_windows_batch
from activities.ingest_rows import cut, parse_bytes
from keel.clients import Clients
from keel.contracts.ingest import IngestOptions, IngestResult
from keel.embedding import make_embedder
from keel.settings import Settings
from tests.bench.common import Entry, bench_stack
from tests.support.ingest_corpus import long_text, mixed_corpus, start_job
from tests.support.worker_process import WorkerProcess

# The job's size in chunks: 10,000 by default, as the issue measures it (a run of ~20 minutes
# here); `KEEL_BENCH_INGEST_CHUNKS=300` for a quick smoke run of the bench itself.
CHUNKS = int(os.environ.get("KEEL_BENCH_INGEST_CHUNKS", "10000"))
SHORT_FILES = min(160, CHUNKS // 10)  # one chunk each
LONG_TOKENS = 900  # two 512-token chunks each
LONG_FILES = (CHUNKS - SHORT_FILES) // 2
BARE_SAMPLE = 2_000


def corpus() -> dict[str, bytes]:
    files = mixed_corpus(SHORT_FILES, seed=42)
    for k in range(LONG_FILES):
        files[f"manuals/manual-{k:03d}.txt"] = long_text(LONG_TOKENS, seed=100 + k).encode()
    return files


def chunk_texts(files: dict[str, bytes]) -> list[str]:
    """The chunk texts a default job stores for `files`: parsed and cut as the cpu worker does."""
    opts = IngestOptions()
    texts: list[str] = []
    for name, data in files.items():
        docs, _ = parse_bytes(name, data, opts.max_file_bytes)
        for doc in docs:
            texts.extend(c.text for c in cut(doc.text, opts))
    return texts


def bare_variants(embedder_kind: str) -> dict[str, dict[str, Any]]:
    """The ways the embedder can drive its model (onnxruntime on the CPU: lanes, a single-thread
    session a core, the default; one session whose threads spin while they wait for work)."""
    if embedder_kind != "onnx":
        return {"default": {}}
    return {"lanes (default)": {}, "one session, threads spinning": {"lanes": 1, "spinning": True}}


def bare_encode(embedder_kind: str, texts: list[str]) -> dict[str, tuple[float, float]]:
    """(wall s, CPU s) of one `embed_windows_batch` call over `texts`, for each variant."""
    out: dict[str, tuple[float, float]] = {}
    for label, options in bare_variants(embedder_kind).items():
        embedder = make_embedder(embedder_kind, **options)
        embed_windows_batch(embedder, texts[:64])  # warm the session
        cpu_started = _cpu_seconds(psutil.Process())
        started = time.perf_counter()
        embed_windows_batch(embedder, texts)
        out[label] = (time.perf_counter() - started, _cpu_seconds(psutil.Process()) - cpu_started)
        del embedder
    return out


def _steal_seconds() -> float:
    """CPU time the hypervisor gave to other guests, all cores (0 where not reported)."""
    return float(getattr(psutil.cpu_times(), "steal", 0.0))


def _cpu_seconds(process: psutil.Process, *, reaped: bool = False) -> float:
    """User + system CPU seconds of a process (and, with `reaped`, of its exited children)."""
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    total = times.user + times.system
    return total + (times.children_user + times.children_system if reaped else 0.0)


def stack_cpu(settings: Settings, workers: list[WorkerProcess]) -> dict[str, float]:
    """CPU seconds used so far by each process of the stack the job runs on."""
    out = {f"{w.queue} worker": _cpu_seconds(psutil.Process(w.pid)) for w in workers}
    pid_file = settings.data_dir / "postgres" / "postmaster.pid"
    postmaster = psutil.Process(int(pid_file.read_text().split()[0]))
    # The postmaster reaps its backends, so their time lives on in its children's totals.
    out["PostgreSQL"] = _cpu_seconds(postmaster, reaped=True) + sum(
        _cpu_seconds(child) for child in postmaster.children(recursive=True)
    )
    marker = str(settings.data_dir / "temporal.db")
    out["Temporal"] = sum(
        _cpu_seconds(proc)
        for proc in psutil.process_iter(["cmdline"])
        if marker in (proc.info["cmdline"] or [])
    )
    out["bench process"] = _cpu_seconds(psutil.Process())
    return out


async def _sample_rss(
    workers: list[WorkerProcess], peaks: dict[str, int], stop: asyncio.Event
) -> None:
    while not stop.is_set():
        for worker in workers:
            peaks[worker.queue] = max(peaks.get(worker.queue, 0), worker.rss())
        await asyncio.sleep(0.2)


async def run() -> Entry:
    entry = Entry(name="Ingestion: end-to-end chunks/s vs bare encode, worker memory")
    files = corpus()
    expected = chunk_texts(files)
    # Seeded and shuffled, so both halves hold the same mix of short and long chunks.
    sample = random.Random(7).sample(expected, min(len(expected), BARE_SAMPLE))
    halves = (sample[: len(sample) // 2], sample[len(sample) // 2 :])
    with bench_stack() as settings, tempfile.TemporaryDirectory() as logs:
        # The bare encode runs both ways the embedder can drive the model (`bare_variants`),
        # each on the same seeded sample, half before the job and half after (the stack up and
        # idle both times); the faster variant is the denominator: the worker's setting must
        # win in the pipeline, not by slowing the reference.
        steal_before = _steal_seconds()
        before = bare_encode(settings.embedder, halves[0])
        steal_bare = _steal_seconds() - steal_before
        clients = await Clients.connect(settings)
        log = Path(logs) / "workers.log"
        workers = [WorkerProcess(settings, q, log).start() for q in ("cpu", "gpu")]
        peaks: dict[str, int] = {}
        stop = asyncio.Event()
        sampler = asyncio.create_task(_sample_rss(workers, peaks, stop))
        try:
            # Warm-up job: worker start-up (model load) is not ingestion throughput.
            warm = await start_job(clients, settings, "bench-warm", {"w.txt": b"Warm up."})
            await clients.temporal.get_workflow_handle(warm).result()
            idle = {w.queue: w.rss() for w in workers}

            cpu_before = stack_cpu(settings, workers)
            steal_before = _steal_seconds()
            started = time.perf_counter()
            job_id = await start_job(clients, settings, "bench", files)
            result: IngestResult = await clients.temporal.get_workflow_handle(
                job_id, result_type=IngestResult
            ).result()
            elapsed = time.perf_counter() - started
            steal_job = _steal_seconds() - steal_before
            cpu_job = {
                name: spent - cpu_before[name]
                for name, spent in stack_cpu(settings, workers).items()
            }

            started = time.perf_counter()
            again = await start_job(clients, settings, "bench", files)
            rerun: IngestResult = await clients.temporal.get_workflow_handle(
                again, result_type=IngestResult
            ).result()
            rerun_elapsed = time.perf_counter() - started
        finally:
            stop.set()
            await sampler
            for worker in workers:
                worker.stop()
        async with clients.engine.connect() as conn:
            chunks = (
                (
                    await conn.execute(
                        text(
                            "SELECT c.text FROM chunks c JOIN tenants t ON t.id = c.tenant_id "
                            "WHERE t.name = 'bench' ORDER BY c.id"
                        )
                    )
                )
                .scalars()
                .all()
            )
        await clients.close()
        steal_before = _steal_seconds()
        after = bare_encode(settings.embedder, halves[1])
        steal_bare += _steal_seconds() - steal_before

    bare = {label: before[label][0] + after[label][0] for label in before}
    bare_cpu = {label: before[label][1] + after[label][1] for label in before}
    fastest = min(bare, key=bare.__getitem__)
    raw = bare[fastest]

    assert sorted(chunks) == sorted(expected), "the job stored other chunks than the bench cut"
    assert result.chunks_written == len(chunks) and rerun.chunks_written == 0
    e2e_rate = len(chunks) / elapsed
    raw_rate = len(sample) / raw
    entry.measurements["files"] = len(files)
    entry.measurements["documents stored"] = result.documents_stored
    entry.measurements["chunks written"] = len(chunks)
    entry.measurements["chunks in the bare encode's sample"] = len(sample)
    entry.measurements["end to end s"] = round(elapsed, 2)
    entry.measurements["end to end chunks/s"] = round(e2e_rate, 2)
    for label, seconds in bare.items():
        entry.measurements[f"bare encode, {label}, chunks/s"] = round(len(sample) / seconds, 2)
    entry.measurements["bare encode (embed_windows_batch, the faster) s"] = round(raw, 2)
    for when, half, timed in (("before", halves[0], before), ("after", halves[1], after)):
        entry.measurements[f"bare encode, the faster, half the sample {when} the job, chunks/s"] = (
            round(len(half) / timed[fastest][0], 2)
        )
    entry.measurements["bare encode chunks/s"] = round(raw_rate, 2)
    for name, spent in cpu_job.items():
        entry.measurements[f"CPU s during the job, {name}"] = round(spent, 1)
    entry.measurements["CPU s during the job, all but the gpu worker"] = round(
        sum(v for k, v in cpu_job.items() if k != "gpu worker"), 1
    )
    entry.measurements["bare encode CPU ms a chunk"] = round(
        1000 * bare_cpu[fastest] / len(sample), 1
    )
    entry.measurements["gpu worker CPU ms a chunk"] = round(
        1000 * cpu_job["gpu worker"] / len(chunks), 1
    )
    entry.measurements["CPU steal s (other guests' time, both cores), during the job"] = round(
        steal_job, 1
    )
    entry.measurements["CPU steal s, during the bare encode"] = round(steal_bare, 1)
    entry.measurements["re-run, all unchanged s"] = round(rerun_elapsed, 2)
    entry.measurements["RSS cpu worker after warm-up MB"] = round(idle["cpu"] / 2**20, 1)
    entry.measurements["RSS gpu worker after warm-up MB"] = round(idle["gpu"] / 2**20, 1)
    entry.measurements["peak RSS cpu worker MB"] = round(peaks.get("cpu", 0) / 2**20, 1)
    entry.measurements["peak RSS gpu worker MB"] = round(peaks.get("gpu", 0) / 2**20, 1)
    entry.ratios["end-to-end chunks/s / bare encode chunks/s"] = e2e_rate / raw_rate
    defaults = IngestOptions()
    entry.notes.append(
        f"{SHORT_FILES} short txt/md/html/pdf/jsonl files + {LONG_FILES} documents of "
        f"~{LONG_TOKENS} tokens; default options ({defaults.target_tokens}/"
        f"{defaults.overlap_tokens} tokens, {defaults.batch_files} files a batch, "
        f"{defaults.max_concurrent_batches} batches at once); workers are separate processes "
        "(`python worker.py --queue cpu|gpu`)."
    )
    entry.notes.append(
        "End to end = staging the bytes in PostgreSQL to the job's result; the bare encode "
        f"embeds the same chunk texts (all, or a seeded sample of {BARE_SAMPLE:,}) as windows, "
        "in the bench process, half the sample in one call before the job and half after."
    )
    return entry
