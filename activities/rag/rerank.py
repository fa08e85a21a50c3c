"""Stage 4 of the RAG pipeline: rerank the fused candidates (50 by default) down to 5.

Two rerankers:

- `CrossEncoder` — a real cross-encoder (default `cross-encoder/ms-marco-MiniLM-L-6-v2`) that
  reads query and passage together. Two backends, both imported lazily so the default install
  needs neither: ONNX (a directory with `model.onnx` or `onnx/model.onnx` and
  `tokenizer.json`, run with onnxruntime and tokenizers, no torch; the hub repo of the default
  model ships one) and sentence-transformers' `CrossEncoder` (torch). A hub id is resolved with
  `huggingface_hub.snapshot_download` (ONNX files first) or handed to sentence-transformers.
  No package on PyPI ships cross-encoder weights, so offline it needs a local directory.

- `rescore` — the offline default, the strongest reranker that runs here without weights
  nobody ships. For every candidate it recomputes, exactly, what the first stages only
  approximated or missed: the best-window cosine (HNSW is approximate, and a keyword-only
  candidate has no vector score at all) and BM25 against corpus statistics (a vector-only
  candidate has no keyword score); it adds a title match (BM25 ignores titles, which name the
  topic) and, for the first `sentence_candidates` candidates, the best *sentence* cosine: the
  query embedded against each sentence, so a passage whose one sentence answers the question is
  no longer diluted by the rest of its 256-token window. Features are min-max normalised over
  the candidates and summed with `RESCORE_WEIGHTS`, set on one half of the evaluation questions
  and checked on the other (README): +2.5 points recall@5, +2.5 MRR@10 over hybrid order.
  The sentence feature costs one embedding batch of at most `MAX_SENTENCES` sentences, those
  of each candidate that share most terms with the question; 0 candidates turns it off.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import os
import re
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.providers.local import content_terms
from activities.rag.search import keyword_search, window_scores
from keel.contracts.rag import Hit, KeywordScoring, RagFilters
from keel.embedding import Embedder
from keel.rag.fusion import minmax

# Weights of the rescore reranker's features (each min-max normalised over the candidates),
# tuned on the even-numbered evaluation questions, checked on the odd-numbered ones.
RESCORE_WEIGHTS: dict[str, float] = {"vector": 0.4, "keyword": 0.15, "title": 0.15, "sentence": 0.3}
# Embedding is the rescorer's whole cost, and it is compute-bound: on this 2-core CPU a short
# sentence costs ~4 ms in a batch and a long one ~15 ms (~0.3 ms a word piece): 64 sentences
# were 250-600 ms, these 12 cut at 200 characters ~85 ms.
# Each candidate offers only the sentences that share the most content terms with the
# question (ties: earlier first), cut at SENTENCE_CHARS, within a budget of MAX_SENTENCES.
SENTENCES_PER_CANDIDATE = 2
MAX_SENTENCES = 12
SENTENCE_CHARS = 200
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n{2,}")


class ModelUnavailable(RuntimeError):
    """The reranking model cannot be loaded on this worker (missing files or packages)."""


class PairScorer(Protocol):
    """Anything that scores (query, passage) pairs, higher is more relevant."""

    def predict(self, pairs: Sequence[tuple[str, str]]) -> NDArray[np.float32]: ...


class OnnxCrossEncoder:
    """A cross-encoder exported to ONNX, run with onnxruntime: no torch needed.

    Inputs are the usual BERT ones (`input_ids`, `attention_mask`, optionally
    `token_type_ids`); the first output holds one logit per pair (or per class: the last
    column is taken as "relevant").
    """

    def __init__(
        self, directory: Path, *, max_length: int = 512, batch_size: int = 16, threads: int = 0
    ) -> None:
        """Load `model.onnx` (or `onnx/model.onnx`) and `tokenizer.json` from `directory`.

        Raises:
            ModelUnavailable: a file is missing.
        """
        import onnxruntime as ort
        from tokenizers import Tokenizer

        from keel.embedding import session_options

        model = next(
            (
                p
                for p in (directory / "model.onnx", directory / "onnx" / "model.onnx")
                if p.is_file()
            ),
            None,
        )
        vocab = directory / "tokenizer.json"
        if model is None or not vocab.is_file():
            raise ModelUnavailable(f"no model.onnx + tokenizer.json in {directory}")
        self.batch_size = batch_size
        self.tokenizer = Tokenizer.from_file(str(vocab))
        # Long passages lose their tail, never the query.
        self.tokenizer.enable_truncation(max_length=max_length, strategy="only_second")
        self.tokenizer.enable_padding()
        # Threads spin while a batch runs and stop when it returns, not on into the query's
        # next stages.
        options = session_options(threads, spin=True, stop=True)
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider",) if p in available]
        self.session = ort.InferenceSession(
            str(model), sess_options=options, providers=[*providers, "CPUExecutionProvider"]
        )
        self.inputs = {i.name for i in self.session.get_inputs()}

    def predict(self, pairs: Sequence[tuple[str, str]]) -> NDArray[np.float32]:
        scores = np.zeros(len(pairs), dtype=np.float32)
        for lo in range(0, len(pairs), self.batch_size):
            batch = list(pairs[lo : lo + self.batch_size])
            encoded = self.tokenizer.encode_batch(batch)
            feeds = {
                "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
            }
            if "token_type_ids" in self.inputs:
                feeds["token_type_ids"] = np.array([e.type_ids for e in encoded], dtype=np.int64)
            logits = np.asarray(self.session.run(None, feeds)[0], dtype=np.float32)
            scores[lo : lo + len(batch)] = logits.reshape(len(batch), -1)[:, -1]
        return scores


class SentenceTransformersCrossEncoder:
    """sentence-transformers' `CrossEncoder` (torch; CUDA when present)."""

    def __init__(self, model: str, *, max_length: int = 512, batch_size: int = 32) -> None:
        try:
            module = importlib.import_module("sentence_transformers")
        except ImportError as exc:
            raise ModelUnavailable(
                f"cross-encoder {model!r} needs an ONNX export (model.onnx + tokenizer.json) "
                "or the sentence-transformers package (with torch)"
            ) from exc
        self.batch_size = batch_size
        self.model: Any = module.CrossEncoder(model, max_length=max_length)

    def predict(self, pairs: Sequence[tuple[str, str]]) -> NDArray[np.float32]:
        scores = self.model.predict(
            list(pairs), batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(scores, dtype=np.float32).reshape(len(pairs), -1)[:, -1]


def _snapshot(model: str) -> Path | None:
    """The hub repo's files (ONNX export preferred), or None when the hub cannot be used."""
    if importlib.util.find_spec("huggingface_hub") is None:
        return None
    hub: Any = importlib.import_module("huggingface_hub")
    try:
        return Path(
            hub.snapshot_download(
                repo_id=model,
                allow_patterns=["*.json", "*.txt", "onnx/model.onnx"],
            )
        )
    except Exception:  # noqa: BLE001 - offline, unknown repo, no ONNX: try the next backend
        return None


def load_cross_encoder(model: str) -> PairScorer:
    """A cross-encoder from a local directory or a hub id.

    A directory with an ONNX export runs on onnxruntime; any other directory or id goes to
    sentence-transformers.

    Raises:
        ModelUnavailable: nothing could load it (offline without a local copy, no backend).
    """
    path = Path(model).expanduser()
    if path.is_dir():
        try:
            return OnnxCrossEncoder(path)
        except ModelUnavailable:
            return SentenceTransformersCrossEncoder(str(path))
    if path.is_absolute() or model.startswith("."):
        raise ModelUnavailable(f"cross-encoder directory {model} does not exist on this worker")
    if os.environ.get("HF_HUB_OFFLINE") != "1":
        snapshot = _snapshot(model)
        if snapshot is not None:
            try:
                return OnnxCrossEncoder(snapshot)
            except ModelUnavailable:
                pass
    return SentenceTransformersCrossEncoder(model)


class CrossEncoders:
    """Loaded cross-encoders of one worker process, by name: each loads once, on first use."""

    def __init__(self) -> None:
        self._models: dict[str, PairScorer] = {}
        self._lock = threading.Lock()

    def get(self, model: str) -> PairScorer:
        with self._lock:
            if model not in self._models:
                self._models[model] = load_cross_encoder(model)
            return self._models[model]


@dataclass(frozen=True)
class Candidate:
    chunk_id: int
    title: str
    text: str


async def candidates(engine: AsyncEngine, tenant_id: uuid.UUID, ids: list[int]) -> list[Candidate]:
    """Titles (with the chunk's section, where it has one) and texts of the tenant's chunks
    `ids`, in the order given."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT c.id, concat_ws(' › ', coalesce(c.metadata->>'title', d.title, ''), "
                    "c.metadata->>'section'), c.text "
                    "FROM chunks c JOIN documents d ON d.id = c.document_id "
                    "WHERE c.tenant_id = :t AND c.id = ANY(:ids)"
                ),
                {"t": tenant_id, "ids": ids},
            )
        ).all()
    found = {int(r[0]): Candidate(int(r[0]), r[1], r[2]) for r in rows}
    return [found[i] for i in ids if i in found]


def title_scores(question: str, found: list[Candidate]) -> dict[int, float]:
    """Share of the question's content terms that the title contains."""
    asked = content_terms(question)
    if not asked:
        return {c.chunk_id: 0.0 for c in found}
    return {c.chunk_id: len(asked & content_terms(c.title)) / len(asked) for c in found}


def sentence_scores(
    embedder: Embedder,
    vector: NDArray[np.float32],
    found: list[Candidate],
    question: str = "",
) -> dict[int, float]:
    """Best cosine between the query and one sentence of each candidate, for as many of the
    candidates (best first) as `MAX_SENTENCES` sentences cover; each offers the
    `SENTENCES_PER_CANDIDATE` sentences that share the most content terms with `question`."""
    asked = content_terms(question)
    sentences: list[tuple[int, str]] = []
    for c in found:
        pieces = [s.strip()[:SENTENCE_CHARS] for s in _SENTENCE.split(c.text) if s.strip()]
        ranked = sorted(
            range(len(pieces)), key=lambda i: (-len(asked & content_terms(pieces[i])), i)
        )
        sentences += [(c.chunk_id, pieces[i]) for i in ranked[:SENTENCES_PER_CANDIDATE]]
        if len(sentences) >= MAX_SENTENCES:
            break
    sentences = sentences[:MAX_SENTENCES]
    if not sentences:
        return {}
    vectors = embedder.embed([s for _, s in sentences]) @ vector
    best: dict[int, float] = {}
    for (chunk_id, _), score in zip(sentences, vectors.tolist(), strict=True):
        best[chunk_id] = max(best.get(chunk_id, -1.0), float(score))
    return best


async def rescore(
    engine: AsyncEngine,
    *,
    tenant_id: uuid.UUID,
    question: str,
    vector: NDArray[np.float32] | None,
    hits: list[Hit],
    scoring: KeywordScoring = "bm25",
    weights: dict[str, float] | None = None,
    embedder: Embedder | None = None,
    sentence_candidates: int = 10,
) -> list[Hit]:
    """The offline reranker: exact window cosine, corpus BM25, title match and best-sentence
    cosine (for the first `sentence_candidates` hits, when an embedder is given).

    Returns:
        All candidates, best first; `vector` and `keyword` hold the recomputed components.
    """
    weights = weights or RESCORE_WEIGHTS
    ids = [h.chunk_id for h in hits]

    # The three reads are independent, and the sentence embedding (the CPU-bound part) only
    # needs the texts: it starts as soon as they arrive, while the other two reads finish.
    async def texts_and_sentences() -> tuple[list[Candidate], dict[int, float]]:
        found = await candidates(engine, tenant_id, ids)
        if embedder is None or vector is None or sentence_candidates <= 0:
            return found, {}
        sentences = await asyncio.to_thread(
            sentence_scores, embedder, vector, found[:sentence_candidates], question
        )
        return found, sentences

    async def cosines() -> dict[int, float]:
        if vector is None:
            return {}
        return await window_scores(engine, tenant_id=tenant_id, vector=vector, chunk_ids=ids)

    async def keyword_scores() -> dict[int, float]:
        scored = await keyword_search(
            engine,
            tenant_id=tenant_id,
            query=question,
            filters=RagFilters(),
            k=len(ids),
            scoring=scoring,
            chunk_ids=ids,
        )
        return {h.chunk_id: h.score for h in scored}

    (found, sentences), cosine, bm25 = await asyncio.gather(
        texts_and_sentences(), cosines(), keyword_scores()
    )
    titles = title_scores(question, found)
    features = {
        "vector": minmax(cosine),
        "keyword": minmax(bm25),
        "title": titles,
        "sentence": minmax(sentences),
    }
    scored = {
        c.chunk_id: sum(w * features[name].get(c.chunk_id, 0.0) for name, w in weights.items())
        for c in found
    }
    order = sorted(scored, key=lambda i: (-scored[i], ids.index(i)))
    return [
        Hit(chunk_id=i, score=scored[i], vector=cosine.get(i), keyword=bm25.get(i, 0.0))
        for i in order
    ]


async def cross_encode(
    engine: AsyncEngine,
    scorer: PairScorer,
    *,
    tenant_id: uuid.UUID,
    question: str,
    hits: list[Hit],
) -> list[Hit]:
    """Score every candidate with a cross-encoder, best first (the title leads the passage)."""
    found = await candidates(engine, tenant_id, [h.chunk_id for h in hits])
    pairs = [(question, f"{c.title}. {c.text}" if c.title else c.text) for c in found]
    scores = await asyncio.to_thread(scorer.predict, pairs) if pairs else np.zeros(0)
    prior = {h.chunk_id: h for h in hits}
    ranked = sorted(
        zip(found, scores.tolist(), strict=True), key=lambda pair: (-pair[1], pair[0].chunk_id)
    )
    return [
        Hit(
            chunk_id=c.chunk_id,
            score=float(s),
            vector=prior[c.chunk_id].vector,
            keyword=prior[c.chunk_id].keyword,
        )
        for c, s in ranked
    ]


async def rerank_hits(
    engine: AsyncEngine,
    *,
    tenant_id: uuid.UUID,
    question: str,
    vector: NDArray[np.float32] | None,
    hits: list[Hit],
    reranker: str,
    model: str,
    embedder: Embedder | None,
    cross_encoders: CrossEncoders,
    sentence_candidates: int = 10,
) -> list[Hit]:
    """Stage 4 as the pipeline runs it, for the activity and `keel eval` alike.

    Raises:
        ModelUnavailable: `reranker="cross-encoder"` and `model` cannot be loaded here.
    """
    if reranker == "cross-encoder":
        scorer = await asyncio.to_thread(cross_encoders.get, model)
        return await cross_encode(engine, scorer, tenant_id=tenant_id, question=question, hits=hits)
    if reranker == "rescore":
        return await rescore(
            engine,
            tenant_id=tenant_id,
            question=question,
            vector=vector,
            hits=hits,
            embedder=embedder,
            sentence_candidates=sentence_candidates,
        )
    return hits


@lru_cache(maxsize=1)
def shared_cross_encoders() -> CrossEncoders:
    """The process's cross-encoders: every gpu worker in a process shares the loaded models."""
    return CrossEncoders()
