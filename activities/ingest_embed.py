"""The embedding stage of ingestion, on the gpu queue (CUDA when present, else the CPU).

Reads a batch's chunk texts from staging, embeds them in groups of `embed_chunks` through the
configured `Embedder` (windowed, see `keel.embedding`: no part of a 512-token chunk
goes unread by a 256-word-piece model), and writes each chunk's window vectors and pooled
summary vector back to staging as float32 bytes.

Every group is committed before the next starts and only chunks without vectors are read,
so the database is the checkpoint: a retry after a worker dies embeds only what is left.
"""

from __future__ import annotations

import json
import threading

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.embedding_windows import Window, embed_windows_batch, pool
from activities.heartbeat import in_thread
from keel.contracts.ingest import BatchRef, StageCounts
from keel.embedding import Embedder
from keel.telemetry import activity_context


def _f32(vectors: NDArray[np.float32]) -> bytes:
    return np.ascontiguousarray(vectors, dtype="<f4").tobytes()


class IngestEmbedActivities:
    """Holds the process's embedder (loaded once) and PostgreSQL."""

    def __init__(self, *, engine: AsyncEngine, embedder: Embedder) -> None:
        self.engine = engine
        self.embedder = embedder
        # One model call at a time per process: a call already uses every core (or the whole
        # GPU), so concurrent batches only thrash the caches and multiply the runtime's
        # memory arenas. Batches still overlap their reads and writes with the model.
        self._model = threading.Lock()

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
                windows = await in_thread(self._embed, [r[2] for r in rows])
                async with self.engine.begin() as conn:
                    await conn.execute(
                        text(
                            "UPDATE ingest_chunks SET embedding = :e, windows = :w, "
                            "window_spans = CAST(:s AS jsonb) WHERE doc_id = :d AND position = :p"
                        ),
                        [
                            {
                                "d": row[0],
                                "p": row[1],
                                "e": _f32(pool(ws)),
                                "w": _f32(np.stack([w.vector for w in ws])),
                                "s": json.dumps([[w.char_start, w.char_end] for w in ws]),
                            }
                            for row, ws in zip(rows, windows, strict=True)
                        ],
                    )
                embedded += len(rows)
                activity.heartbeat(embedded)

    def _embed(self, texts: list[str]) -> list[list[Window]]:
        with self._model:
            return embed_windows_batch(self.embedder, texts)
