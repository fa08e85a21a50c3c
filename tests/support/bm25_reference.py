"""Exact BM25 computed independently of Keel's postings: from the chunks' own `tsv`.

The reference reads every chunk of a tenant once (lexeme and term frequency from `unnest(tsv)`)
and scores a question with plain Python over those counts, with the textbook formula. Keel's
search must return the same top k; nothing here touches `bm25_*` tables or Keel's search code.
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

K1, B = 1.2, 0.75


@dataclass
class Reference:
    postings: dict[str, dict[int, int]]
    lengths: dict[int, int]
    department: dict[int, str]

    @property
    def avgdl(self) -> float:
        return sum(self.lengths.values()) / len(self.lengths)

    def scores(self, lexemes: list[str], department: str | None = None) -> dict[int, float]:
        n, avgdl = len(self.lengths), self.avgdl
        out: dict[int, float] = defaultdict(float)
        for lexeme in set(lexemes):
            found = self.postings.get(lexeme, {})
            if not found:
                continue
            idf = math.log(1 + (n - len(found) + 0.5) / (len(found) + 0.5))
            for chunk, tf in found.items():
                if department is not None and self.department[chunk] != department:
                    continue
                norm = K1 * (1 - B + B * self.lengths[chunk] / avgdl)
                out[chunk] += idf * tf * (K1 + 1) / (tf + norm)
        return out


async def reference(engine: AsyncEngine, tenant_id: uuid.UUID) -> Reference:
    postings: dict[str, dict[int, int]] = defaultdict(dict)
    lengths: dict[int, int] = defaultdict(int)
    department: dict[int, str] = {}
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT c.id, u.lexeme, greatest(1, cardinality(u.positions)), "
                "c.metadata->>'department' FROM chunks c, unnest(c.tsv) u WHERE c.tenant_id = :t"
            ),
            {"t": tenant_id},
        )
        for chunk, lexeme, tf, dept in rows:
            postings[lexeme][chunk] = tf
            lengths[chunk] += tf
            department[chunk] = dept
    return Reference(postings, lengths, department)


async def lexemes(engine: AsyncEngine, question: str) -> list[str]:
    async with engine.connect() as conn:
        found = (
            await conn.execute(
                text("SELECT tsvector_to_array(to_tsvector('english', :q))"), {"q": question}
            )
        ).scalar_one()
    return list(found)


def recall_at_k(got: list[int], scores: dict[int, float], k: int) -> float:
    """Share of the exact top k that `got` holds; a chunk tied with the exact k-th counts."""
    ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:k]
    if not ranked:
        return 1.0
    kth = ranked[-1][1]
    wanted = {chunk for chunk, _ in ranked}
    hits = sum(1 for chunk in got[:k] if chunk in wanted or scores.get(chunk, 0) >= kth - 1e-9)
    return min(1.0, hits / len(ranked))
