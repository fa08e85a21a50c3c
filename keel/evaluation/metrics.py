"""Retrieval and answer metrics for the evaluation set; pure functions, no I/O.

Ranking metrics use binary relevance: a passage is relevant when it is one of the question's
gold passages. A ranking may name a passage twice (two windows of one chunk, say): the repeat
still takes up its position in the top k, but only the first occurrence can count, so a
duplicate never lifts recall above 1 or earns a second share of gain.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence

from keel.evaluation.dataset import GoldenItem

# Keys of a per-question row that describe the question rather than score it.
_DESCRIPTIVE = frozenset({"answerable", "qid", "kind", "gold_ids", "gold_passage_ids"})

_NOT_ENOUGH = re.compile(
    r"\b(?:do|does|did)\s*(?:not|n't)\s+(?:have|contain|include|provide|give)\s+"
    r"(?:enough|sufficient)\s+information\b"
    r"|\b(?:not\s+enough|insufficient)\s+information\b"
    r"|\bno\s+information\s+(?:about|on|regarding|in)\b"
    r"|\bi\s+(?:cannot|can't|can\s+not|am\s+unable\s+to)\s+(?:find|answer|determine|tell)\b"
    r".{0,60}?\b(?:context|documents?|sources?|passages?)\b"
    r"|\bnot\s+(?:mentioned|covered|specified|stated|included)\s+in\s+the\s+"
    r"(?:provided\s+|available\s+)?(?:context|documents?|sources?|passages?)\b",
    re.IGNORECASE,
)
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")


def _top_k_hits(ranked_ids: Sequence[str], gold: set[str], k: int) -> list[int]:
    """1-based ranks, within the top k, of each gold id's first occurrence."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    seen: set[str] = set()
    ranks: list[int] = []
    for rank, passage_id in enumerate(ranked_ids[:k], 1):
        if passage_id in gold and passage_id not in seen:
            ranks.append(rank)
        seen.add(passage_id)
    return ranks


def recall_at_k(ranked_ids: Sequence[str], gold_ids: Iterable[str], k: int) -> float:
    """Share of the gold passages found in the top `k` of the ranking.

    Args:
        ranked_ids: passage ids, best first.
        gold_ids: the relevant passage ids.
        k: how many ranked ids count (at least 1).

    Returns:
        A value in [0, 1]; 0.0 when there is no gold passage (the question is unanswerable
        and `aggregate` leaves it out).
    """
    gold = set(gold_ids)
    found = _top_k_hits(ranked_ids, gold, k)
    return len(found) / len(gold) if gold else 0.0


def mrr_at_k(ranked_ids: Sequence[str], gold_ids: Iterable[str], k: int) -> float:
    """Reciprocal rank of the first gold passage in the top `k`; 0.0 when none is there."""
    ranks = _top_k_hits(ranked_ids, set(gold_ids), k)
    return 1.0 / ranks[0] if ranks else 0.0


def ndcg_at_k(ranked_ids: Sequence[str], gold_ids: Iterable[str], k: int) -> float:
    """Normalised discounted cumulative gain in the top `k`, binary relevance.

    DCG sums 1 / log2(rank + 1) over the gold passages found; the ideal ranking puts
    min(len(gold), k) gold passages first. 0.0 when there is no gold passage.
    """
    gold = set(gold_ids)
    ranks = _top_k_hits(ranked_ids, gold, k)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(gold), k) + 1))
    if not ideal:
        return 0.0
    return sum(1.0 / math.log2(rank + 1) for rank in ranks) / ideal


def _is_answerable(row: Mapping[str, object]) -> bool:
    if row.get("answerable") is False:
        return False
    return all(row[key] for key in ("gold_ids", "gold_passage_ids") if key in row)


def aggregate(per_question: Iterable[Mapping[str, object]]) -> dict[str, float]:
    """Mean of every numeric metric over the answerable questions.

    A row is one question's scores, e.g. `{"qid": "hr-q01", "answerable": True,
    "recall@5": 1.0, "mrr@10": 0.5}`. A row is left out when `answerable` is False or its
    `gold_ids` / `gold_passage_ids` is empty. Numbers (booleans count as 0 or 1) are averaged
    per key over the rows that have that key; `qid`, `kind`, `answerable` and the gold ids are
    descriptive and ignored.

    Returns:
        `{"questions": <answerable rows>, <metric>: <mean>, ...}`; only `questions` when no
        row is answerable.
    """
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    questions = 0
    for row in per_question:
        if not _is_answerable(row):
            continue
        questions += 1
        for key, value in row.items():
            if key in _DESCRIPTIVE or not isinstance(value, int | float):
                continue
            sums[key] = sums.get(key, 0.0) + float(value)
            counts[key] = counts.get(key, 0) + 1
    return {"questions": float(questions)} | {key: sums[key] / counts[key] for key in sums}


def citation_correct(cited_passage_ids: Iterable[str], gold_ids: Iterable[str]) -> bool:
    """Whether an answer's citations are right.

    For an answerable question: at least one cited passage is gold. For an unanswerable one
    (no gold): nothing is cited, since there is nothing to ground an answer in.
    """
    cited = set(cited_passage_ids)
    gold = set(gold_ids)
    if not gold:
        return not cited
    return bool(cited & gold)


def citation_precision(cited_passage_ids: Iterable[str], gold_ids: Iterable[str]) -> float:
    """Share of the distinct cited passages that are gold; 0.0 when nothing is cited.

    Low precision with a correct citation usually means the distractor version of a
    policy was cited alongside the right one.
    """
    cited = set(cited_passage_ids)
    if not cited:
        return 0.0
    return len(cited & set(gold_ids)) / len(cited)


def _normalise(text: str) -> str:
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u00a0", " ")
    return " ".join(_THOUSANDS.sub("", text).lower().split())


def says_not_enough_information(answer: str) -> bool:
    """True when an answer declines for lack of information.

    Matches the pipeline's "I don't have enough information to answer that ..." and the
    usual variants ("the context does not contain sufficient information", "there is not
    enough information", "no information about ...", "I cannot find this in the provided
    documents", "not mentioned in the sources").
    """
    return bool(_NOT_ENOUGH.search(_normalise(answer)))


def _contains(answer: str, needle: str) -> bool:
    """Case- and spacing-insensitive containment that respects word edges, so that "22"
    is not found in "2022" and "$1,500" matches "$1500"."""
    target = _normalise(needle)
    if not target:
        return True
    left = r"(?<!\w)" if target[0].isalnum() else ""
    right = r"(?!\w)" if target[-1].isalnum() else ""
    return re.search(left + re.escape(target) + right, _normalise(answer)) is not None


def golden_check(answer: str, item: GoldenItem) -> bool:
    """Whether `answer` passes a golden item.

    Every `must_contain` string must appear and no `must_not_contain` string may. A
    `must_contain` entry that is itself a "not enough information" phrase is satisfied by any
    answer that `says_not_enough_information`, whatever its wording.
    """
    for needle in item.must_contain:
        if says_not_enough_information(needle):
            if not says_not_enough_information(answer):
                return False
        elif not _contains(answer, needle):
            return False
    return not any(_contains(answer, needle) for needle in item.must_not_contain)


__all__ = [
    "aggregate",
    "citation_correct",
    "citation_precision",
    "golden_check",
    "mrr_at_k",
    "ndcg_at_k",
    "recall_at_k",
    "says_not_enough_information",
]
