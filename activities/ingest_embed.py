"""The embedding stage of ingestion, on the gpu queue (CUDA when present, else the CPU).

Reads a batch's chunk texts from staging, embeds them in groups of `embed_chunks` through the
configured `Embedder` (windowed, see `keel.embedding`: no part of a 512-token chunk
goes unread by a 256-word-piece model), and writes each chunk's pooled summary vector and its
window vectors (packed end to end into one) back to staging as pgvector values, sent in
binary (`keel.db.PackedVector`). The upsert copies them into `chunks` and `chunk_windows` in
SQL, so no vector is formatted, parsed or carried through Python after this stage.

Every group is committed before the next starts and only chunks without vectors are read,
so the database is the checkpoint: a retry after a worker dies embeds only what is left.

Groups of concurrent batches share model calls (`ModelQueue`): while one call runs, the
groups that arrive wait and then go through the model together. A group of 32 chunks is
~80 windows, cut by length into a few small runs; merged, a GPU's runs are full and of one
length, while each batch keeps its own small checkpoint. (On the CPU a run holds one full
window, `keel.embedding.CPU_BATCH_TOKENS`, so merging there saves only calls.)
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import numpy as np
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.embedding_windows import Window, embed_windows_batch, pool
from activities.heartbeat import heartbeating
from keel.contracts.ingest import BatchRef, StageCounts
from keel.db import PackedVector
from keel.embedding import Embedder
from keel.telemetry import activity_context

# Chunks in one shared model call at most (~640 windows: the model's memory stays that of
# one run of `batch_size` windows; a longer call only delays the groups that wait).
MAX_CALL_CHUNKS = 256


@dataclass
class _Group:
    texts: list[str]
    done: asyncio.Future[list[list[Window]]]


class ModelQueue:
    """One model call at a time per process, each carrying every group that is waiting.

    A call already uses every core (or the whole GPU), so calls never overlap; groups that
    arrive during a call are merged into the next one (up to `max_chunks`), so its runs are
    full. A failed merged call is retried group by group, so one bad group fails alone.
    """

    def __init__(self, embedder: Embedder, *, max_chunks: int = MAX_CALL_CHUNKS) -> None:
        self.embedder = embedder
        self.max_chunks = max_chunks
        self._waiting: list[_Group] = []
        self._runner: asyncio.Task[None] | None = None
        self.calls = 0  # model calls made (read by tests)

    async def embed(self, texts: list[str]) -> list[list[Window]]:
        """Each text's windows, in order; waits for its turn at the model."""
        group = _Group(texts, asyncio.get_running_loop().create_future())
        self._waiting.append(group)
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())
        return await group.done

    async def _run(self) -> None:
        while self._waiting:
            taken: list[_Group] = []
            size = 0
            while self._waiting and (
                not taken or size + len(self._waiting[0].texts) <= self.max_chunks
            ):
                group = self._waiting.pop(0)
                if not group.done.done():  # a cancelled activity left its group behind
                    taken.append(group)
                    size += len(group.texts)
            if taken:
                await self._call(taken)

    async def _call(self, groups: list[_Group]) -> None:
        texts = [t for g in groups for t in g.texts]
        self.calls += 1
        try:
            windows = await asyncio.to_thread(embed_windows_batch, self.embedder, texts)
        except Exception as exc:
            if len(groups) > 1:
                for group in groups:
                    await self._call([group])
                return
            if not groups[0].done.done():
                groups[0].done.set_exception(exc)
            return
        start = 0
        for group in groups:
            if not group.done.done():
                group.done.set_result(windows[start : start + len(group.texts)])
            start += len(group.texts)


class IngestEmbedActivities:
    """Holds the process's embedder (loaded once) and PostgreSQL."""

    def __init__(self, *, engine: AsyncEngine, embedder: Embedder) -> None:
        self.engine = engine
        self.embedder = embedder
        # Batches overlap their reads and writes with the model; the model itself runs one
        # call at a time, shared by the batches waiting for it.
        self.model = ModelQueue(embedder)

    @activity.defn(name="ingest_embed")
    async def embed(self, ref: BatchRef) -> StageCounts:
        """Embed every chunk of the batch that has no vectors yet; returns chunks embedded."""
        embedded = 0
        with activity_context(ref.tenant):
            while True:
                async with self.engine.connect() as conn:
                    rows = (
                        await conn.execute(
                            text(
                                "SELECT c.doc_id, c.position, c.text FROM ingest_chunks c "
                                "JOIN ingest_docs d ON d.id = c.doc_id WHERE d.job_id = :j "
                                "AND d.file_id BETWEEN :a AND :b AND d.status = 'chunked' "
                                "AND c.embedding IS NULL ORDER BY c.doc_id, c.position LIMIT :n"
                            ),
                            {
                                "j": ref.job_id,
                                "a": ref.files.first,
                                "b": ref.files.last,
                                "n": ref.options.embed_chunks,
                            },
                        )
                    ).all()
                if not rows:
                    return StageCounts(chunks=embedded)
                windows = await heartbeating(self.model.embed([r[2] for r in rows]), every=1.0)
                async with self.engine.begin() as conn:
                    await conn.execute(
                        text(
                            "UPDATE ingest_chunks SET embedding = CAST(:e AS vector), "
                            "windows = CAST(:w AS vector), window_spans = CAST(:s AS jsonb) "
                            "WHERE doc_id = :d AND position = :p"
                        ),
                        [
                            {
                                "d": row[0],
                                "p": row[1],
                                "e": PackedVector(pool(ws)),
                                "w": PackedVector(np.stack([w.vector for w in ws])),
                                "s": json.dumps([[w.char_start, w.char_end] for w in ws]),
                            }
                            for row, ws in zip(rows, windows, strict=True)
                        ],
                    )
                embedded += len(rows)
                activity.heartbeat(embedded)
