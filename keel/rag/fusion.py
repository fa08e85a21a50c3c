"""Stage 3 of the RAG pipeline: the vector and keyword lists merged into one ranking."""

from __future__ import annotations

from keel.contracts.rag import FuseInput, Hit


def minmax(values: dict[int, float]) -> dict[int, float]:
    """Scale scores to [0, 1] within one list (all equal: all 1)."""
    if not values:
        return {}
    low, high = min(values.values()), max(values.values())
    if high - low < 1e-12:
        return dict.fromkeys(values, 1.0)
    return {key: (value - low) / (high - low) for key, value in values.items()}


def fuse(request: FuseInput) -> list[Hit]:
    """Merge the vector and keyword lists into one ranking (stage 3).

    "weighted": each list's scores are min-max normalised, then summed with the weights; a
    chunk missing from a list gets 0 there (it scored below that list's last entry).
    "rrf": reciprocal rank fusion, `sum(weight / (rrf_k + rank))`, which ignores the scores.

    Returns:
        Up to `k` hits, best first, with both component scores kept (None where missing).
    """
    vector = {h.chunk_id: h.score for h in request.vector}
    keyword = {h.chunk_id: h.score for h in request.keyword}
    ids = list(dict.fromkeys([*vector, *keyword]))
    if request.fusion == "rrf":
        vrank = {h.chunk_id: i for i, h in enumerate(request.vector, start=1)}
        krank = {h.chunk_id: i for i, h in enumerate(request.keyword, start=1)}
        fused = {
            i: (request.vector_weight / (request.rrf_k + vrank[i]) if i in vrank else 0.0)
            + (request.keyword_weight / (request.rrf_k + krank[i]) if i in krank else 0.0)
            for i in ids
        }
    else:
        vnorm, knorm = minmax(vector), minmax(keyword)
        fused = {
            i: request.vector_weight * vnorm.get(i, 0.0)
            + request.keyword_weight * knorm.get(i, 0.0)
            for i in ids
        }
    ranked = sorted(ids, key=lambda i: (-fused[i], i))[: request.k]
    return [
        Hit(chunk_id=i, score=fused[i], vector=vector.get(i), keyword=keyword.get(i))
        for i in ranked
    ]
