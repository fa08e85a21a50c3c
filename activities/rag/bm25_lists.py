"""BM25 from whole posting lists held in memory (a per-process cache), for unfiltered and
selectively filtered queries: each query lexeme's list is read once per corpus version and
scored in numpy. The threshold algorithm over impact-ordered lists is in `activities.rag.bm25`.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from activities.rag.bm25 import (
    FILTER_MASK_CHUNKS,
    K1,
    B,
    Stats,
    parse_ints,
    sql_array,
)


@dataclass(frozen=True)
class Postings:
    """One lexeme's whole list, as arrays."""

    chunks: NDArray[np.int64]
    tf: NDArray[np.float64]
    dl: NDArray[np.float64]

    @property
    def size(self) -> int:
        return len(self.chunks)


class PostingCache:
    """Whole posting lists of recently searched lexemes, per process, under the tenant's
    statistics version: any write to the tenant's chunks bumps the version (in the writing
    transaction), and a list cached under another version is never used. Bounded by the
    number of postings held (14 bytes each), least recently used out first."""

    def __init__(self, max_postings: int) -> None:
        self.max_postings = max_postings
        self._lists: OrderedDict[int, tuple[int, Postings]] = OrderedDict()
        self._held = 0

    def get(self, term_id: int, version: int) -> Postings | None:
        found = self._lists.get(term_id)
        if found is None or found[0] != version:
            return None
        self._lists.move_to_end(term_id)
        return found[1]

    def put(self, term_id: int, version: int, postings: Postings) -> None:
        old = self._lists.pop(term_id, None)
        if old is not None:
            self._held -= old[1].size
        if postings.size > self.max_postings:
            return
        self._lists[term_id] = (version, postings)
        self._held += postings.size
        while self._held > self.max_postings:
            _, (_, dropped) = self._lists.popitem(last=False)
            self._held -= dropped.size


# ~110 MB at 14 bytes a posting: the common lexemes of a 100k-chunk tenant.
CACHE = PostingCache(max_postings=8_000_000)

_WHOLE_LISTS = """
SELECT term_id, string_agg(chunk_id::text, ','), string_agg(tf::text, ','),
       string_agg(dl::text, ',')
FROM bm25_postings WHERE term_id = ANY(CAST(:terms AS bigint[])) GROUP BY term_id
"""


async def exact_top_k(
    conn: AsyncConnection,
    stats: Stats,
    *,
    k: int,
    cache: PostingCache = CACHE,
    among: NDArray[np.int64] | None = None,
) -> list[tuple[int, float]]:
    """Exact BM25 top `k` by scoring every posting of the query's lexemes in numpy.

    The lists come from the cache when it holds them under the current version, otherwise
    from Postgres in one query (and into the cache). `conn` must be the connection that read
    `stats`, inside a REPEATABLE READ transaction, so lists and statistics are one snapshot.
    `among` (sorted chunk ids) keeps only those chunks: the ones a metadata filter passes.
    """
    lists: dict[int, Postings] = {}
    missing = []
    for term in stats.terms:
        cached = cache.get(term.id, stats.version)
        if cached is None:
            missing.append(term.id)
        else:
            lists[term.id] = cached
    if missing:
        rows = (await conn.execute(text(_WHOLE_LISTS), {"terms": sql_array(missing)})).all()
        for term_id, chunks, tf, dl in rows:
            # tf and dl are integer columns: parsed as integers, several times faster.
            postings = Postings(
                parse_ints(chunks),
                parse_ints(tf).astype(np.float64),
                parse_ints(dl).astype(np.float64),
            )
            lists[int(term_id)] = postings
            cache.put(int(term_id), stats.version, postings)
    parts = [(t, lists[t.id]) for t in stats.terms if t.id in lists and lists[t.id].size]
    if not parts:
        return []
    chunks = np.concatenate([p.chunks for _, p in parts])
    weights = np.concatenate(
        [t.idf * p.tf * (K1 + 1) / (p.tf + K1 * (1 - B + B * p.dl / stats.avgdl)) for t, p in parts]
    )
    if among is not None:
        keep = np.isin(chunks, among)
        chunks, weights = chunks[keep], weights[keep]
        if not len(chunks):
            return []
    ids, inverse = np.unique(chunks, return_inverse=True)
    scores = np.bincount(inverse, weights=weights)
    take = min(k, len(ids))
    top = np.argpartition(-scores, take - 1)[:take]
    order = top[np.lexsort((ids[top], -scores[top]))]
    return [(int(ids[i]), float(scores[i])) for i in order]


async def passing_chunks(
    conn: AsyncConnection, tenant_id: uuid.UUID, where: str, params: dict[str, Any]
) -> NDArray[np.int64] | None:
    """Sorted ids of the tenant's chunks that pass the filter, or None when more than
    `FILTER_MASK_CHUNKS` do (then the threshold algorithm is cheaper)."""
    joined = (
        await conn.execute(
            text(
                "SELECT count(*), string_agg(id::text, ',') FROM (SELECT c.id FROM chunks c "
                f"WHERE c.tenant_id = :t {where} LIMIT :cap) s"
            ),
            {**params, "t": tenant_id, "cap": FILTER_MASK_CHUNKS + 1},
        )
    ).one()
    if int(joined[0]) > FILTER_MASK_CHUNKS:
        return None
    if not joined[0]:
        return np.zeros(0, dtype=np.int64)
    return np.sort(parse_ints(joined[1]))
