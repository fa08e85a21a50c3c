"""Semantic cache: reuse an answer to a differently-worded request with the same meaning.

Embedding similarity alone returns wrong answers: "leave policy 2023" and "leave policy 2025"
embed at ~0.97 cosine. So a candidate must pass two tests: cosine similarity at or above the
threshold (0.95 by default), AND the same *key terms* as the new request — numbers and years,
negations, and contrast words whose flip reverses a question's meaning (before/after,
monthly/annual, my/their...). Wrong hits measured on `evals/semantic_cache/pairs.jsonl` are
in the README; `tests/test_semantic_cache.py` keeps them from regressing.

Entries are tenant-scoped, scoped to the model (or routing tier) and the system prompt, expire
after their TTL, and are deleted when a document they cited changes.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.ledger import cache_hit_row, record
from keel.contracts.gateway import CacheHit, CacheProbe, CacheWrite
from keel.embedding import Embedder, load_tokenizer, minilm_tokenizer_path
from keel.guards.cache_key import system_hash
from keel.quickdb import QuickDb
from keel.telemetry import CACHE_LOOKUPS

CANDIDATES = 5

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# Codes that mix letters and digits ("a1b2c3d4", "kx-00007", "v2"), compared whole: their
# digits alone may agree ("a1b2c3d4" and "e1f2a3b4").
_CODE = re.compile(r"\b[a-z0-9-]*(?:[a-z][0-9]|[0-9][a-z])[a-z0-9-]*\b")
_WORD = re.compile(r"[a-z][a-z'-]*")
# Words whose presence or absence flips what is asked, mapped to one spelling so that
# "maximum" and "max" agree.
_NEGATIONS = (
    "not no never without non cannot can't don't doesn't isn't aren't won't shouldn't "
    "except excluding"
).split()
_FLIPS = (
    # direction, order, comparison
    "before after increase decrease raise lower more less most least first last earliest "
    "latest inbound outbound upload download import export add remove enable disable start "
    "stop open close buy sell above below "
    # whose, which scope
    "my his her their colleague manager team company personal all any some "
    # periods
    "daily weekly monthly quarterly hourly today yesterday tomorrow current previous next "
    # who a rule applies to
    "contractor intern part-time full-time new existing senior junior"
).split()
_SYNONYMS = {
    "maximum": "max",
    "max": "max",
    "minimum": "min",
    "min": "min",
    "every": "each",
    "each": "each",
    "annual": "annual",
    "annually": "annual",
    "yearly": "annual",
}
_CONTRAST: dict[str, str] = {
    **dict.fromkeys(_NEGATIONS, "not"),
    **{w: w for w in _FLIPS},
    **_SYNONYMS,
}
# Capitalised words that are not names.
_NOT_NAMES = frozenset(
    (
        "i who what when where why how which is are can could do does the a an please pls "
        "tell list if our we according"
    ).split()
)
_SKIP = frozenset("a an the my our your their his her this that".split())


def _lemma(word: str) -> str:
    word = word.removesuffix("'s")
    return word[:-1] if word.endswith("s") and not word.endswith("ss") and len(word) > 3 else word


def _direction(words: list[str]) -> set[str]:
    """'from X to Y' roles, so swapping source and target changes the key terms."""
    if "from" not in words or "to" not in words:
        return set()
    roles = set()
    for marker in ("from", "to"):
        at = words.index(marker) + 1
        while at < len(words) and words[at] in _SKIP:
            at += 1
        if at < len(words):
            roles.add(f"{marker}:{_lemma(words[at])}")
    return roles


def key_terms(question: str) -> frozenset[str]:
    """Numbers, contrast words, direction roles and proper names/codes.

    Two requests may share an answer only when these sets are equal.
    """
    lowered = question.lower()
    words = _WORD.findall(lowered)
    terms = {f"#{n}" for n in _NUMBER.findall(lowered)}
    terms |= {f"code:{c}" for c in _CODE.findall(lowered)}
    terms |= {_CONTRAST[_lemma(w)] for w in words if _lemma(w) in _CONTRAST}
    terms |= {_CONTRAST[w] for w in words if w in _CONTRAST}
    terms |= {"not" for w in words if w.startswith(("non-", "un-"))}
    terms |= _direction(words)
    terms |= _names(question)
    # "convert a contractor to a full-time employee" and its reverse hold the same words;
    # with "to" between them, their order is the meaning.
    ordered = [_CONTRAST[w] for w in words if w in _CONTRAST and w not in ("not",)]
    if "to" in words and len(set(ordered)) >= 2:
        terms.add(">".join(ordered))
    return frozenset(terms)


def _names(question: str) -> set[str]:
    """Proper names and codes (Orion, SSO, VPN-EU): capitalised words that do not merely
    start a sentence, and any word with a capital after its first letter."""
    found = set()
    sentence_start = True
    for match in re.finditer(r"[A-Za-z][\w-]*|[.?!:;]", question):
        word = match.group()
        if word in ".?!:;":
            sentence_start = True
            continue
        inner_capital = any(c.isupper() for c in word[1:])
        if (inner_capital or (word[0].isupper() and not sentence_start)) and (
            word.lower() not in _NOT_NAMES
        ):
            found.add(f"@{_lemma(word.lower())}")
        sentence_start = False
    return found


def same_meaning_guard(new: str, cached: str) -> bool:
    """True when nothing in the key terms says the two questions differ, and no rare word
    (a code, a name written in lowercase, a product: see `_rare`) is in one and not the
    other."""
    if key_terms(new) != key_terms(cached):
        return False
    differing = set(_WORD.findall(new.lower())) ^ set(_WORD.findall(cached.lower()))
    return not any(_rare(word) for word in differing)


@lru_cache(maxsize=1)
def _known_words() -> frozenset[str]:
    """The whole words of the embedding model's 30k-piece vocabulary: English as people
    write it, without codes or invented names."""
    vocab = load_tokenizer(minilm_tokenizer_path()).get_vocab()
    return frozenset(piece for piece in vocab if piece.isalpha())


def _rare(word: str) -> bool:
    """A word outside the vocabulary ("reference abcdefab" against "reference cdcdcdcd",
    "zorvex" against "quintrel") in any of its hyphen or apostrophe parts of four letters or
    more. Two questions that differ by one are never taken to mean the same thing, however
    close their vectors: such a word is usually what the question is about."""
    known = _known_words()
    parts = re.split(r"['-]", _lemma(word))
    return any(len(p) >= 4 and p not in known and _lemma(p) not in known for p in parts)


async def embed_question(embedder: Embedder, question: str) -> list[float]:
    vectors = await asyncio.to_thread(embedder.embed, [question])
    return [float(x) for x in vectors[0]]


# A tenant's nearest cached requests under one scope and system prompt (psycopg placeholders,
# so the API's `QuickDb` and the engine run the same text).
_NEAREST_SQL = """
    SELECT query_text, response, model, 1 - (embedding <=> %(v)s::vector) AS similarity, id
    FROM semantic_cache
    WHERE tenant_id = %(t)s AND model_scope = %(scope)s AND system_hash = %(sys)s
      AND expires_at > now()
    ORDER BY embedding <=> %(v)s::vector
    LIMIT %(k)s
"""
_STORE_SQL = """
    INSERT INTO semantic_cache (tenant_id, model_scope, system_hash, query_text,
        embedding, response, model, cited_document_ids, expires_at)
    SELECT %(t)s, %(scope)s, %(sys)s, %(q)s, %(v)s::vector, %(r)s, %(m)s, %(cited)s, %(exp)s
    WHERE NOT EXISTS (
        SELECT 1 FROM semantic_cache WHERE tenant_id = %(t)s AND model_scope = %(scope)s
          AND system_hash = %(sys)s AND query_text = %(q)s AND expires_at > now())
"""


async def find_semantic(
    db: AsyncEngine | QuickDb,
    embedder: Embedder | None,
    probe: CacheProbe,
    vector: list[float] | None = None,
) -> CacheHit | None:
    """The nearest cached request of this tenant/scope/system prompt that is similar enough
    and passes the key-term guard (not yet recorded in the ledger). `vector`: the question's
    embedding, when the caller already has it (then no `embedder` is needed). The API passes
    its `QuickDb` (one round trip), workers the engine."""
    if not probe.query_text:
        return None
    if vector is None:
        if embedder is None:
            raise ValueError("find_semantic needs an embedder or the question's vector")
        vector = await embed_question(embedder, probe.query_text)
    params = {
        "v": _literal(vector),
        "t": uuid.UUID(probe.context.tenant_id),
        "scope": probe.model_scope,
        "sys": system_hash(probe.system),
        "k": CANDIDATES,
    }
    if isinstance(db, QuickDb):
        rows: Sequence[Any] = await db.fetchall(_NEAREST_SQL, params)
    else:
        async with db.begin() as conn:
            # Filters are selective (one tenant, one scope): let HNSW keep scanning until it
            # finds enough rows that pass them.
            await conn.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
            rows = (await conn.exec_driver_sql(_NEAREST_SQL, params)).all()
    for cached_query, response, model, similarity, entry in rows:
        if similarity < probe.threshold:
            break
        if same_meaning_guard(probe.query_text, cached_query):
            CACHE_LOOKUPS.labels("semantic", "hit").inc()
            return CacheHit(
                layer="semantic",
                text=response,
                model=model,
                similarity=float(similarity),
                cached_key=f"semantic_cache:{entry}",
                entry=str(entry),
            )
    CACHE_LOOKUPS.labels("semantic", "miss").inc()
    return None


async def store_semantic(db: AsyncEngine | QuickDb, write: CacheWrite, vector: list[float]) -> None:
    """Insert the answer under the question's vector, unless this very question is cached."""
    params = {
        "t": uuid.UUID(write.context.tenant_id),
        "scope": write.model_scope,
        "sys": system_hash(write.system),
        "q": write.query_text,
        "v": _literal(vector),
        "r": write.text,
        "m": write.model,
        "cited": write.cited_document_ids,
        "exp": datetime.now(UTC) + timedelta(seconds=write.ttl_seconds),
    }
    if isinstance(db, QuickDb):
        await db.fetchone(_STORE_SQL, params)
        return
    async with db.begin() as conn:
        await conn.exec_driver_sql(_STORE_SQL, params)


def _literal(vector: list[float]) -> str:
    """pgvector's text form of a vector."""
    return "[" + ",".join(map(repr, vector)) + "]"


class SemanticCacheActivities:
    """Runs on the gpu queue, next to the embedder it needs."""

    def __init__(self, *, engine: AsyncEngine, embedder: Embedder) -> None:
        self.engine = engine
        self.embedder = embedder

    async def _embed(self, question: str) -> list[float]:
        return await embed_question(self.embedder, question)

    @activity.defn(name="semantic_cache_lookup")
    async def semantic_cache_lookup(self, probe: CacheProbe) -> CacheHit | None:
        """Nearest cached request of this tenant/scope/system prompt that passes both tests."""
        hit = await find_semantic(self.engine, self.embedder, probe)
        if hit is not None:
            await record(self.engine, cache_hit_row(probe, hit))
        return hit

    @activity.defn(name="semantic_cache_store")
    async def semantic_cache_store(self, write: CacheWrite) -> None:
        """Remember this answer for similar future requests (idempotent per request)."""
        if not write.semantic or not write.query_text:
            return
        await store_semantic(self.engine, write, await self._embed(write.query_text))
