"""BM25 top-k over Keel's postings tables, reading as few postings as the ranking needs.

The tables (migration 0005) hold, per tenant, each lexeme's document frequency and one posting
per (lexeme, chunk) with its term frequency, the chunk's length and an `impact`: the BM25 term
weight at a fixed reference length, which orders each lexeme's list. A question's lexemes come
from the same `to_tsvector('english', ...)` as the stored `tsv`, so query and chunks share one
tokenisation.

Search is the threshold algorithm over those impact-ordered lists:

1. read the first postings of every query lexeme's list (strongest first);
2. every chunk seen gets the exact BM25 contributions of the lists it was seen in; a list it
   was not seen in can add at most that list's *bound*: idf x the impact where reading stopped,
   scaled by max(1, avgdl / reference length) because the live avgdl is not the reference;
3. the k-th best exact score is the threshold; candidates whose upper bound beats it get their
   missing contributions looked up by primary key, so they become exact;
4. a chunk seen in no list can score at most the sum of the bounds: when that is at or below
   the threshold the top k is exactly BM25's, otherwise every unfinished list is read deeper.

The stop is exact; only when a question's lists are so long and flat that `max_postings` rows
were read without meeting it does the search return its best k so far, marked approximate
(every returned score is still exact, a chunk could be missing from the list). Statistics are
the tenant's: with metadata filters the same N, avgdl and df apply (the reference scores of
the unfiltered corpus, restricted to the chunks that pass), rather than re-counted per filter.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

K1 = 1.2
B = 0.75
# Must match migration 0005's bm25_impact(): the lists are ordered by the weight at this length.
REF_LENGTH = 256.0
FIRST_DEPTH = 128
MAX_POSTINGS = 60_000
RESOLVE_BATCH = 400


@dataclass
class Term:
    id: int
    lexeme: str
    df: int
    idf: float
    read: int = 0
    exhausted: bool = False
    last_impact: float = math.inf


@dataclass
class Stats:
    chunk_count: int
    avgdl: float
    terms: list[Term]

    @property
    def bound_scale(self) -> float:
        return max(1.0, self.avgdl / REF_LENGTH)

    def bound(self, term: Term) -> float:
        if term.exhausted:
            return 0.0
        if math.isinf(term.last_impact):
            return term.idf * (K1 + 1)
        return term.idf * term.last_impact * self.bound_scale


def idf(chunk_count: int, df: int) -> float:
    return math.log(1 + (chunk_count - df + 0.5) / (df + 0.5))


class TopK:
    """A search's state: a (candidate x term) matrix of exact contributions, NaN where a
    candidate was not seen in a term's list yet."""

    def __init__(self, stats: Stats, k: int) -> None:
        self.stats = stats
        self.k = k
        self.column = {t.id: j for j, t in enumerate(stats.terms)}
        self.rows: dict[int, int] = {}
        self.ids: list[int] = []
        self.weights = np.full((0, len(stats.terms)), np.nan)
        self.approximate = False
        self.postings_read = 0

    def add(self, postings: Sequence[Any]) -> None:
        """Record (term_id, chunk_id, tf, dl, ...) rows: their exact BM25 contributions."""
        if not postings:
            return
        new = [int(p[1]) for p in postings if int(p[1]) not in self.rows]
        for chunk_id in dict.fromkeys(new):
            self.rows[chunk_id] = len(self.ids)
            self.ids.append(chunk_id)
        if len(self.ids) > self.weights.shape[0]:
            grown = np.full(
                (max(len(self.ids), 2 * self.weights.shape[0]), self.weights.shape[1]), np.nan
            )
            grown[: self.weights.shape[0]] = self.weights
            self.weights = grown
        data = np.array([(p[0], p[1], p[2], p[3]) for p in postings], dtype=np.float64)
        cols = np.array([self.column[int(t)] for t in data[:, 0]])
        rows = np.array([self.rows[int(c)] for c in data[:, 1]])
        idf = np.array([t.idf for t in self.stats.terms])[cols]
        tf, dl = data[:, 2], data[:, 3]
        norm = K1 * (1 - B + B * dl / self.stats.avgdl)
        self.weights[rows, cols] = idf * tf * (K1 + 1) / (tf + norm)

    def _live(self) -> NDArray[np.float64]:
        return self.weights[: len(self.ids)]

    def bounds(self) -> NDArray[np.float64]:
        return np.array([self.stats.bound(t) for t in self.stats.terms])

    def lower(self) -> NDArray[np.float64]:
        lows: NDArray[np.float64] = np.nansum(self._live(), axis=1)
        return lows

    def threshold(self) -> float:
        lows = self.lower()
        if len(lows) < self.k:
            return 0.0
        return float(np.partition(lows, len(lows) - self.k)[len(lows) - self.k])

    def unseen_bound(self) -> float:
        return float(self.bounds().sum())

    def to_resolve(self, theta: float) -> list[int]:
        """Candidates with an unknown contribution that could still beat `theta`, most
        promising first."""
        live = self._live()
        missing = np.isnan(live) & (self.bounds() > 0)
        upper = np.nansum(live, axis=1) + missing @ self.bounds()
        open_ = np.flatnonzero(missing.any(axis=1) & (upper > theta))
        ranked = open_[np.argsort(-upper[open_], kind="stable")]
        return [self.ids[i] for i in ranked]

    def missing_terms(self, chunk_id: int) -> list[int]:
        row = self._live()[self.rows[chunk_id]]
        return [
            t.id for j, t in enumerate(self.stats.terms) if np.isnan(row[j]) and not t.exhausted
        ]

    def settle(self, chunk_ids: Sequence[int]) -> None:
        """Looked up and not found: those contributions are 0."""
        live = self._live()
        for chunk_id in chunk_ids:
            row = live[self.rows[chunk_id]]
            row[np.isnan(row)] = 0.0

    def best(self) -> list[tuple[int, float]]:
        lows = self.lower()
        order = sorted(range(len(lows)), key=lambda i: (-lows[i], self.ids[i]))[: self.k]
        return [(self.ids[i], float(lows[i])) for i in order]


_TERMS = """
SELECT s.chunk_count, s.length_total,
       coalesce(array_agg(t.id ORDER BY t.id) FILTER (WHERE t.id IS NOT NULL), '{}'),
       coalesce(array_agg(t.lexeme ORDER BY t.id) FILTER (WHERE t.id IS NOT NULL), '{}'),
       coalesce(array_agg(t.df ORDER BY t.id) FILTER (WHERE t.id IS NOT NULL), '{}')
FROM bm25_tenants s
LEFT JOIN bm25_terms t ON t.tenant_id = s.tenant_id AND t.df > 0
     AND t.lexeme = ANY(tsvector_to_array(to_tsvector('english', :q)))
WHERE s.tenant_id = :t
GROUP BY s.chunk_count, s.length_total
"""

# The next slice of each unfinished list, strongest postings first. With filters, the scan
# walks the list in impact order and keeps the chunks that pass, stopping at the limit.
_LISTS = """
SELECT q.term_id, p.chunk_id, p.tf, p.dl, p.impact
FROM unnest(CAST(:terms AS bigint[]), CAST(:offsets AS int[]), CAST(:limits AS int[]))
     AS q(term_id, off, lim)
CROSS JOIN LATERAL (
    SELECT p.chunk_id, p.tf, p.dl, p.impact FROM bm25_postings p {join}
    WHERE p.term_id = q.term_id {where}
    ORDER BY p.impact DESC, p.chunk_id
    OFFSET q.off LIMIT q.lim
) p
"""

# One index scan: the btree walks the (sorted) term x chunk combinations in key order.
_POINTS = """
SELECT p.term_id, p.chunk_id, p.tf, p.dl FROM bm25_postings p
WHERE p.term_id = ANY(CAST(:terms AS bigint[])) AND p.chunk_id = ANY(CAST(:chunks AS bigint[]))
"""

_CHUNK_POSTINGS = """
SELECT p.term_id, p.chunk_id, p.tf, p.dl FROM bm25_postings p {join}
WHERE p.term_id = ANY(CAST(:terms AS bigint[])) AND p.chunk_id = ANY(CAST(:ids AS bigint[]))
      {where}
"""


async def load_stats(conn: AsyncConnection, tenant_id: uuid.UUID, query: str) -> Stats | None:
    """N, avgdl and the query's lexemes with their df in the tenant; None when nothing matches."""
    row = (await conn.execute(text(_TERMS), {"t": tenant_id, "q": query})).one_or_none()
    if row is None or not row[2] or row[0] <= 0:
        return None
    chunk_count, length_total = int(row[0]), int(row[1])
    avgdl = max(1.0, length_total / chunk_count)
    terms = [
        Term(id=int(i), lexeme=str(lex), df=int(df), idf=idf(chunk_count, int(df)))
        for i, lex, df in zip(row[2], row[3], row[4], strict=True)
    ]
    return Stats(chunk_count=chunk_count, avgdl=avgdl, terms=terms)


def _filter_join(where: str) -> str:
    return "JOIN chunks c ON c.id = p.chunk_id" if where else ""


def _array(values: Sequence[int]) -> str:
    """An integer array literal: psycopg's list adaptation costs more than the query here."""
    return "{" + ",".join(map(str, values)) + "}"


async def top_k(
    conn: AsyncConnection,
    stats: Stats,
    *,
    k: int,
    where: str = "",
    params: dict[str, Any] | None = None,
    max_postings: int = MAX_POSTINGS,
) -> TopK:
    """The exact BM25 top `k` (see the module docstring for how and when it is approximate).

    Reading a list is sequential and cheap; looking a contribution up is a random probe. So a
    round first reads every unfinished list deeper, makes only the most promising `k`
    candidates exact (to raise the threshold), and resolves the rest only once no unseen chunk
    can beat the threshold any more.
    """
    params = params or {}
    state = TopK(stats=stats, k=k)
    depth = max(FIRST_DEPTH, 2 * k)
    lists = text(_LISTS.format(join=_filter_join(where), where=where))
    while True:
        reading = [t for t in stats.terms if not t.exhausted]
        limits = [max(depth - t.read, 1) for t in reading]
        rows = (
            await conn.execute(
                lists,
                {
                    **params,
                    "terms": _array([t.id for t in reading]),
                    "offsets": _array([t.read for t in reading]),
                    "limits": _array(limits),
                },
            )
        ).all()
        by_id = {t.id: t for t in reading}
        got: dict[int, int] = dict.fromkeys(by_id, 0)
        for term_id, _chunk, _tf, _dl, impact in rows:
            term = by_id[int(term_id)]
            term.last_impact = float(impact)
            got[term.id] += 1
        state.add(rows)
        state.postings_read += len(rows)
        for term, limit in zip(reading, limits, strict=True):
            term.read += got[term.id]
            if got[term.id] < limit:
                term.exhausted = True
        finished = all(t.exhausted for t in stats.terms)
        await _resolve(conn, state, limit=None if finished else k)
        if finished or state.unseen_bound() <= state.threshold():
            await _resolve(conn, state, limit=None)
            if finished or state.unseen_bound() <= state.threshold():
                return state
        if state.postings_read >= max_postings:
            await _resolve(conn, state, limit=None)
            state.approximate = True
            return state
        depth *= 4


async def _resolve(conn: AsyncConnection, state: TopK, *, limit: int | None) -> None:
    """Make exact the candidates whose upper bound beats the threshold (at most `limit`)."""
    points = text(_POINTS)
    while True:
        batch = state.to_resolve(state.threshold())[: limit or RESOLVE_BATCH]
        if not batch:
            return
        terms = [t.id for t in state.stats.terms if not t.exhausted]
        rows = (await conn.execute(points, {"terms": _array(terms), "chunks": _array(batch)})).all()
        state.add(rows)
        state.settle(batch)
        if limit is not None:
            return


async def score_chunks(
    conn: AsyncConnection,
    stats: Stats,
    chunk_ids: Sequence[int],
    *,
    k: int,
    where: str = "",
    params: dict[str, Any] | None = None,
) -> list[tuple[int, float]]:
    """Exact BM25 of the given chunks (those that pass the filters), best first."""
    rows = (
        await conn.execute(
            text(_CHUNK_POSTINGS.format(join=_filter_join(where), where=where)),
            {
                **(params or {}),
                "terms": _array([t.id for t in stats.terms]),
                "ids": _array(list(chunk_ids)),
            },
        )
    ).all()
    state = TopK(stats=stats, k=k)
    state.add(rows)
    return state.best()
