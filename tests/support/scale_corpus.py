"""A corpus of any size for scale tests and `make bench`: real-looking text, fixed seed.

Chunks are recombined from real prose: the sentences of the evaluation corpus (`evals/corpus`,
327 passages written for Keel) and the docstrings of the standard library and of Keel's pinned
dependencies (~20,000 sentences of technical documentation nobody here wrote), grouped by
topic (a department, a package). So word frequencies, stemming and stopwords behave like a
real documentation set: common words sit in a large share of chunks, rare ones in few, and
chunks of one topic are near-duplicates of each other. Each chunk keeps one topic's sentences
(with some from others), swaps its numbers, and may carry a unique policy code ("KX-00007")
in a sentence of its own: the identifier questions that must find exactly one chunk among
thousands of near-duplicates.

Vectors come without the encoder, so 100,000 chunks build in minutes: every pool sentence is
embedded once with the real model, and a chunk's windows are the normalised means of its
sentences' vectors (first and second half) plus a little noise, which keeps them near what
the encoder gives for such text; the chunk's summary vector is the mean of its windows.
Rows are written through Keel's own store code (`activities.store.upsert_document`).
"""

from __future__ import annotations

import json
import re
import sysconfig
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.store import ChunkRecord, upsert_document
from keel.text.docstrings import split_sentences, walk_docstrings

CORPUS = Path(__file__).resolve().parents[2] / "evals" / "corpus"
SENTENCES_PER_CHUNK = (14, 22)  # ~300-480 words: 400-620 MiniLM tokens, like real chunks
CHUNKS_PER_DOCUMENT = 20
CODE_SHARE = 0.2  # share of chunks that carry a unique policy code
DOC_TYPES = ("policy", "guideline", "faq", "runbook", "contract")
_NUMBER = re.compile(r"\b\d+\b")
# Prose: a capitalised sentence of 5-40 words, without code punctuation.
_PROSE = re.compile(r"^[A-Z][^\n]{20,300}$")
_CODE = re.compile(r"[>{}\[\]=]{2}|::|\$|\w\(|\)\.|`|>>>")
MIN_TOPIC_SENTENCES = 40
# Installed at pinned versions by pyproject.toml, so the same files on every machine.
PACKAGES = (
    "sqlalchemy",
    "pydantic",
    "temporalio",
    "fastapi",
    "starlette",
    "httpx",
    "alembic",
    "rich",
    "typer",
    "redis",
    "psycopg",
    "anthropic",
    "openai",
    "numpy",
    "yaml",
)
SKIP_PARTS = {"idlelib", "lib2to3", "site-packages", "tests", "test", "__pycache__", "_vendor"}


@dataclass(frozen=True)
class Pool:
    sentences: list[str]
    departments: list[str]
    by_department: dict[str, NDArray[np.int64]]
    vectors: NDArray[np.float32] | None


def load_pool(embed: Any | None = None) -> Pool:
    """Sentences by topic, embedded when `embed` is given: the evaluation corpus's passages
    (topic = department) and the docstrings of the standard library and of Keel's pinned
    dependencies (topic = top-level package), read with `ast`, never imported."""
    groups: dict[str, list[str]] = {}
    for path in sorted(CORPUS.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            for sentence in split_sentences(row["text"]):
                groups.setdefault(str(row.get("department") or path.stem), []).append(sentence)
    for topic, found in _docstrings().items():
        groups.setdefault(topic, []).extend(found)
    sentences: list[str] = []
    owners: list[str] = []
    for topic in sorted(groups):
        unique = list(dict.fromkeys(groups[topic]))
        if len(unique) >= MIN_TOPIC_SENTENCES:
            sentences += unique
            owners += [topic] * len(unique)
    departments = sorted(set(owners))
    owner = np.array(owners)
    by_department = {d: np.flatnonzero(owner == d) for d in departments}
    vectors = None if embed is None else np.asarray(embed(sentences), dtype=np.float32)
    return Pool(sentences, departments, by_department, vectors)


@lru_cache(maxsize=1)
def _docstrings() -> dict[str, list[str]]:
    """Prose sentences of docstrings, by top-level package, in a fixed file order."""
    roots = [Path(sysconfig.get_paths()["stdlib"])]
    site = Path(sysconfig.get_paths()["purelib"])
    roots += [site / name for name in PACKAGES if (site / name).is_dir()]
    found: dict[str, list[str]] = {}
    for root in roots:
        for parts, doc in walk_docstrings(
            root, skip=lambda p: p in SKIP_PARTS or p.startswith("test")
        ):
            topic = root.name if root.parent == site else parts[0].removesuffix(".py")
            found.setdefault(topic, []).extend(
                s for s in split_sentences(doc) if _PROSE.match(s) and not _CODE.search(s)
            )
    return found


def policy_code(n: int) -> str:
    return f"KX-{n:05d}"


@dataclass(frozen=True)
class Fact:
    """A unique fact planted in one chunk: its code, the sentence, and a question about it."""

    code: str
    sentence: str
    question: str


def _fact(rng: np.random.Generator, n: int) -> Fact:
    code = policy_code(n)
    thing = rng.choice(["backup tapes", "visitor badges", "laptop loans", "vendor invoices"])
    days = int(rng.integers(3, 400))
    return Fact(
        code=code,
        sentence=f"Policy {code} sets the retention period for {thing} to {days} days.",
        question=f"What retention period does policy {code} set?",
    )


@dataclass
class Chunk:
    text: str
    department: str
    sentence_ids: list[int]
    fact: Fact | None


def chunks(pool: Pool, *, seed: int, start: int, count: int) -> Iterator[Chunk]:
    """`count` chunks, the `start`-th onwards, of the corpus with this seed (deterministic:
    chunk i is the same whatever `start` and `count` produced it)."""
    for i in range(start, start + count):
        rng = np.random.default_rng([seed, i])
        department = pool.departments[int(rng.integers(len(pool.departments)))]
        own = pool.by_department[department]
        size = int(rng.integers(*SENTENCES_PER_CHUNK))
        foreign = int(rng.binomial(size, 0.15))
        ids = list(rng.choice(own, size=size - foreign))
        ids += list(rng.integers(0, len(pool.sentences), size=foreign))
        order = rng.permutation(len(ids))
        ids = [int(ids[j]) for j in order]
        numbers = iter(rng.integers(1, 500, size=64).tolist())

        def number(_match: re.Match[str], drawn: Iterator[int] = numbers) -> str:
            return str(next(drawn, 7))

        parts = [_NUMBER.sub(number, pool.sentences[j]) for j in ids]
        fact = _fact(rng, i) if rng.random() < CODE_SHARE else None
        if fact is not None:
            parts.insert(int(rng.integers(len(parts) + 1)), fact.sentence)
        yield Chunk(" ".join(parts), department, ids, fact)


def _unit(rows: NDArray[np.float32]) -> NDArray[np.float32]:
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    unit: NDArray[np.float32] = (rows / np.clip(norms, 1e-12, None)).astype(np.float32)
    return unit


def vectors_of(
    pool: Pool, chunk: Chunk, rng: np.random.Generator
) -> tuple[NDArray[np.float32], list[NDArray[np.float32]]]:
    """A chunk's summary vector and two window vectors, from its sentences' vectors (random
    unit vectors when the pool was loaded without an embedder: keyword-only tests)."""
    ids = chunk.sentence_ids
    if pool.vectors is None:
        windows = [_unit(rng.normal(size=384).astype(np.float32)) for _ in range(2)]
        return _unit(np.mean(windows, axis=0)), windows
    half = max(1, len(ids) // 2)
    windows = []
    for part in (ids[:half], ids[half:] or ids[:half]):
        assert pool.vectors is not None
        mean = pool.vectors[part].mean(axis=0)
        windows.append(_unit(mean + rng.normal(0, 0.005, size=mean.shape).astype(np.float32)))
    return _unit(np.mean(windows, axis=0)), windows


async def store(
    engine: AsyncEngine,
    pool: Pool,
    *,
    tenant_id: uuid.UUID,
    seed: int,
    start: int,
    count: int,
    source_prefix: str = "scale",
) -> list[Fact]:
    """Write chunks `start` .. `start + count` as documents of `CHUNKS_PER_DOCUMENT` chunks;
    returns the facts planted in them."""
    facts: list[Fact] = []
    batch: list[Chunk] = []

    async def flush(first: int) -> None:
        doc = first // CHUNKS_PER_DOCUMENT
        rng = np.random.default_rng([seed, doc, 7])
        records = []
        for offset, chunk in enumerate(batch):
            summary, windows = vectors_of(pool, chunk, rng)
            records.append(
                ChunkRecord(
                    position=first % CHUNKS_PER_DOCUMENT + offset,
                    text=chunk.text,
                    token_count=int(len(chunk.text.split()) * 1.3),
                    embedding=summary.tolist(),
                    windows=[w.tolist() for w in windows],
                    metadata={
                        "department": chunk.department,
                        "doc_type": DOC_TYPES[doc % len(DOC_TYPES)],
                        "date": f"{2019 + doc % 7}-{1 + doc % 12:02d}-{1 + doc % 28:02d}",
                    },
                )
            )
        await upsert_document(
            engine,
            tenant_id=tenant_id,
            source=f"{source_prefix}/{doc:06d}#{first % CHUNKS_PER_DOCUMENT}",
            title=f"{batch[0].department} handbook {doc}",
            metadata={"department": batch[0].department},
            content_hash=f"{seed}:{first}:{len(batch)}",
            chunks=records,
        )
        batch.clear()

    first = start
    for i, chunk in enumerate(chunks(pool, seed=seed, start=start, count=count), start=start):
        if chunk.fact is not None:
            facts.append(chunk.fact)
        if batch and i % CHUNKS_PER_DOCUMENT == 0:
            await flush(first)
            first = i
        batch.append(chunk)
    if batch:
        await flush(first)
    return facts


def questions(pool: Pool, *, seed: int, count: int) -> list[str]:
    """Natural-language questions built from pool sentences: common words included."""
    rng = np.random.default_rng([seed, 99])
    openers = ["What is", "How do", "When must", "Who can", "Which rules cover", "Why do"]
    out = []
    for _ in range(count):
        words = pool.sentences[int(rng.integers(len(pool.sentences)))].rstrip(".").split()
        take = min(len(words), int(rng.integers(5, 10)))
        at = int(rng.integers(0, len(words) - take + 1))
        opener = openers[int(rng.integers(len(openers)))]
        out.append(f"{opener} {' '.join(words[at : at + take]).lower()}?")
    return out
