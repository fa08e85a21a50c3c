"""Seed a tenant's corpus from labelled passages: what `keel eval` and the RAG tests use.

Each passage becomes one chunk (so a retrieved chunk maps back to exactly one labelled
passage), embedded as windows like ingestion does, and the passages of one `doc_id` form one
document. Storing goes through `activities.store.upsert_document`, so seeding again is a no-op
for unchanged documents. Embeddings can be cached on disk by text hash: the CPU embeds a dozen
long chunks per second, and an evaluation corpus is embedded far more often than it changes.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.embedding_windows import Window, embed_windows_batch
from activities.store import ChunkRecord, upsert_document
from keel.contracts.ingest import UpsertOutcome
from keel.embedding import Embedder
from keel.text.chunking import count_tokens


@dataclass(frozen=True)
class Passage:
    """One labelled passage of an evaluation (or test) corpus."""

    doc_id: str
    passage_id: str
    title: str
    text: str
    date: str | None = None
    department: str | None = None
    doc_type: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Passage:
        known = {"doc_id", "passage_id", "title", "text", "date", "department", "doc_type"}
        return cls(
            doc_id=str(row["doc_id"]),
            passage_id=str(row["passage_id"]),
            title=str(row.get("title") or ""),
            text=str(row["text"]),
            date=row.get("date"),
            department=row.get("department"),
            doc_type=row.get("doc_type"),
            extra={k: v for k, v in row.items() if k not in known},
        )

    def metadata(self) -> dict[str, Any]:
        meta = {
            "title": self.title,
            "date": self.date,
            "department": self.department,
            "doc_type": self.doc_type,
        }
        return {k: v for k, v in meta.items() if v is not None}


class EmbeddingCache:
    """Window vectors of texts, by SHA-256 of embedder name + text, in one `.npz` file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._vectors: dict[str, np.ndarray[Any, np.dtype[np.float32]]] = {}
        self._dirty = False
        if path is not None and path.is_file():
            with np.load(path) as stored:
                self._vectors = {key: stored[key] for key in stored.files}

    @staticmethod
    def key(embedder: Embedder, text: str) -> str:
        return hashlib.sha256(f"{embedder.name}\n{text}".encode()).hexdigest()

    def windows(self, embedder: Embedder, texts: Sequence[str]) -> list[list[Any]]:
        """Each text's window vectors (a (n, dim) array per text), embedding only the misses."""
        keys = [self.key(embedder, t) for t in texts]
        missing = [i for i, k in enumerate(keys) if k not in self._vectors]
        if missing:
            embedded: list[list[Window]] = embed_windows_batch(
                embedder, [texts[i] for i in missing]
            )
            for i, windows in zip(missing, embedded, strict=True):
                stacked = np.stack([w.vector for w in windows]) if windows else np.zeros((0, 1))
                self._vectors[keys[i]] = stacked.astype(np.float32)
            self._dirty = True
        return [list(self._vectors[k]) for k in keys]

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(self.path, **self._vectors)  # type: ignore[arg-type]
        self._dirty = False


def _summary(windows: list[Any]) -> Any:
    # `pool` weights windows by their tokens; cached windows lost their token counts, and the
    # summary vector is not what search reads (windows are), so an even mean is enough here.
    if len(windows) == 1:
        return windows[0]
    mean = np.mean(np.stack(windows), axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12)


async def seed_passages(
    engine: AsyncEngine,
    embedder: Embedder,
    *,
    tenant_id: uuid.UUID,
    passages: Iterable[Passage],
    cache: EmbeddingCache | None = None,
    source_prefix: str = "",
) -> list[UpsertOutcome]:
    """Store `passages` for a tenant, one document per `doc_id`, one chunk per passage.

    Args:
        engine: the database.
        embedder: the embedder retrieval will use.
        tenant_id: the tenant to seed.
        passages: the corpus.
        cache: optional on-disk embedding cache.
        source_prefix: prepended to each document's source (default: the doc id itself).

    Returns:
        One outcome per document (`unchanged` when it was already stored).
    """
    cache = cache or EmbeddingCache(None)
    by_doc: dict[str, list[Passage]] = {}
    for passage in passages:
        by_doc.setdefault(passage.doc_id, []).append(passage)
    ordered = [p for doc in by_doc.values() for p in doc]
    vectors = dict(
        zip(
            (p.passage_id for p in ordered),
            cache.windows(embedder, [p.text for p in ordered]),
            strict=True,
        )
    )
    cache.save()
    outcomes = []
    for doc_id, doc in by_doc.items():
        chunks = [
            ChunkRecord(
                position=i,
                text=p.text,
                token_count=count_tokens(p.text, embedder.tokenizer),
                embedding=_summary(vectors[p.passage_id]),
                windows=vectors[p.passage_id],
                metadata={**p.metadata(), "passage_id": p.passage_id},
            )
            for i, p in enumerate(doc)
        ]
        digest = hashlib.sha256(
            json.dumps([[p.passage_id, p.text, p.metadata()] for p in doc]).encode()
        ).hexdigest()
        first = doc[0]
        outcomes.append(
            await upsert_document(
                engine,
                tenant_id=tenant_id,
                source=f"{source_prefix}{doc_id}",
                title=first.title,
                metadata=first.metadata(),
                content_hash=digest,
                chunks=chunks,
            )
        )
    return outcomes


__all__ = ["EmbeddingCache", "Passage", "seed_passages"]
