"""Evaluation metrics against values worked out by hand, edge cases included."""

from __future__ import annotations

import math

import pytest

from keel.evaluation.dataset import GoldenItem
from keel.evaluation.metrics import (
    aggregate,
    citation_correct,
    citation_precision,
    golden_check,
    mrr_at_k,
    ndcg_at_k,
    recall_at_k,
    says_not_enough_information,
)

LOG3 = math.log2(3)  # the discount at rank 2


def test_recall_counts_gold_in_the_top_k() -> None:
    ranked = ["a", "b", "c", "d"]
    assert recall_at_k(ranked, ["b", "d"], 1) == 0.0
    assert recall_at_k(ranked, ["b", "d"], 2) == 0.5
    assert recall_at_k(ranked, ["b", "d"], 4) == 1.0
    assert recall_at_k(ranked, ["b", "d"], 50) == 1.0  # k beyond the ranking's length
    assert recall_at_k(ranked, ["b", "z"], 4) == 0.5  # a gold id never retrieved


def test_mrr_is_the_reciprocal_rank_of_the_first_gold() -> None:
    assert mrr_at_k(["g", "x"], ["g"], 10) == 1.0
    assert mrr_at_k(["x", "g", "y"], ["g"], 10) == 0.5
    assert mrr_at_k(["x", "y", "z", "g"], ["g", "z"], 10) == pytest.approx(1 / 3)


def test_ndcg_with_binary_relevance() -> None:
    # One gold at rank 2: DCG = 1/log2(3), ideal = 1.
    assert ndcg_at_k(["x", "g"], ["g"], 2) == pytest.approx(1 / LOG3)
    # Gold at ranks 1 and 3 of two: DCG = 1 + 1/2, ideal = 1 + 1/log2(3).
    assert ndcg_at_k(["a", "x", "b"], ["a", "b"], 3) == pytest.approx(1.5 / (1 + 1 / LOG3))
    # More gold than k: the ideal has only k gold, so a perfect top k scores 1.
    assert ndcg_at_k(["a", "b"], ["a", "b", "c"], 2) == pytest.approx(1.0)
    assert ndcg_at_k(["a", "b", "x"], ["a", "b"], 3) == pytest.approx(1.0)


def test_no_gold_scores_zero() -> None:
    for metric in (recall_at_k, mrr_at_k, ndcg_at_k):
        assert metric(["a", "b"], [], 5) == 0.0


def test_gold_beyond_k_scores_zero() -> None:
    ranked = ["x", "y", "z", "g"]
    assert recall_at_k(ranked, ["g"], 3) == 0.0
    assert mrr_at_k(ranked, ["g"], 3) == 0.0
    assert ndcg_at_k(ranked, ["g"], 3) == 0.0
    assert mrr_at_k(ranked, ["g"], 4) == 0.25


def test_empty_ranking_scores_zero() -> None:
    assert recall_at_k([], ["g"], 5) == 0.0
    assert mrr_at_k([], ["g"], 5) == 0.0
    assert ndcg_at_k([], ["g"], 5) == 0.0


def test_duplicates_take_a_slot_but_count_once() -> None:
    ranked = ["a", "a", "b"]
    gold = ["a", "b"]
    # Top 2 is a, a: one gold found, the repeat wastes the second slot.
    assert recall_at_k(ranked, gold, 2) == 0.5
    assert mrr_at_k(ranked, gold, 2) == 1.0
    assert ndcg_at_k(ranked, gold, 2) == pytest.approx(1 / (1 + 1 / LOG3))
    # Top 3 finds b at rank 3: DCG = 1 + 1/log2(4).
    assert recall_at_k(ranked, gold, 3) == 1.0
    assert ndcg_at_k(ranked, gold, 3) == pytest.approx(1.5 / (1 + 1 / LOG3))
    # Repeats of a single gold never lift recall or nDCG above 1.
    assert recall_at_k(["g", "g", "g"], ["g"], 3) == 1.0
    assert ndcg_at_k(["g", "g", "g"], ["g"], 3) == pytest.approx(1.0)
    # Duplicated gold ids count once.
    assert recall_at_k(["a"], ["a", "a"], 1) == 1.0


@pytest.mark.parametrize("metric", [recall_at_k, mrr_at_k, ndcg_at_k])
def test_k_must_be_positive(metric: object) -> None:
    with pytest.raises(ValueError, match="k must be at least 1"):
        metric(["a"], ["a"], 0)  # type: ignore[operator]


def test_aggregate_averages_answerable_questions_only() -> None:
    rows: list[dict[str, object]] = [
        {"qid": "q1", "kind": "direct", "answerable": True, "recall@5": 1.0, "mrr@10": 0.5},
        {"qid": "q2", "kind": "keyword", "answerable": True, "recall@5": 0.0, "mrr@10": 1.0},
        {"qid": "q3", "kind": "unanswerable", "answerable": False, "recall@5": 0.0},
        {"qid": "q4", "gold_ids": [], "recall@5": 0.0, "mrr@10": 0.0},
    ]
    assert aggregate(rows) == {"questions": 2.0, "recall@5": 0.5, "mrr@10": 0.75}


def test_aggregate_counts_booleans_and_missing_keys_per_metric() -> None:
    rows: list[dict[str, object]] = [
        {"gold_passage_ids": ["a"], "citation_correct": True, "ndcg@10": 1.0},
        {"gold_passage_ids": ["b"], "citation_correct": False},
        {"gold_passage_ids": ["c"], "citation_correct": True, "note": "text is ignored"},
    ]
    result = aggregate(rows)
    assert result["questions"] == 3.0
    assert result["citation_correct"] == pytest.approx(2 / 3)
    assert result["ndcg@10"] == 1.0  # only the row that has it
    assert "note" not in result


def test_aggregate_of_nothing() -> None:
    assert aggregate([]) == {"questions": 0.0}
    assert aggregate([{"answerable": False, "recall@5": 1.0}]) == {"questions": 0.0}


def test_citation_correct() -> None:
    assert citation_correct(["a", "x"], ["a"]) is True
    assert citation_correct(["x"], ["a"]) is False
    assert citation_correct([], ["a"]) is False
    # Unanswerable: correct only when nothing is cited.
    assert citation_correct([], []) is True
    assert citation_correct(["x"], []) is False


def test_citation_precision() -> None:
    assert citation_precision(["a", "x"], ["a"]) == 0.5
    assert citation_precision(["a", "a"], ["a", "b"]) == 1.0
    assert citation_precision([], ["a"]) == 0.0


@pytest.mark.parametrize(
    "answer",
    [
        "I don't have enough information to answer that from the provided documents.",
        "I don\u2019t have enough information to answer that.",
        "I do not have sufficient information in the sources to say.",
        "The context does not contain enough information about sabbaticals.",
        "There is not enough information in the documents.",
        "Insufficient information: none of the sources covers this.",
        "There is no information about dogs in the office in the provided context.",
        "I cannot find the answer in the provided documents.",
        "The Lisbon Wi-Fi password is not mentioned in the provided sources.",
    ],
)
def test_says_not_enough_information(answer: str) -> None:
    assert says_not_enough_information(answer)


@pytest.mark.parametrize(
    "answer",
    [
        "Full-time employees get 25 days of paid annual leave [Source 1].",
        "Collect enough information before you file a claim [Source 2].",
        "The policy does not apply to contractors [Source 1].",
        "If you cannot find the form, ask the People team [Source 3].",
        "",
    ],
)
def test_answers_are_not_mistaken_for_declining(answer: str) -> None:
    assert not says_not_enough_information(answer)


def test_golden_check_must_and_must_not() -> None:
    item = GoldenItem(input="Leave in 2025?", must_contain=["25 days"], must_not_contain=["22"])
    assert golden_check("Full-time staff get 25 days [Source 1].", item)
    assert golden_check(
        "Under the 2022 rules? No: 25 Days  in 2025.", item
    )  # "22" is not in "2022"
    assert not golden_check("25 days, up from 22 days in 2023.", item)
    assert not golden_check("Twenty-five days.", item)
    assert not golden_check("125 days", item)  # word edges


def test_golden_check_numbers_and_symbols() -> None:
    item = GoldenItem(input="Manager limit?", must_contain=["$1,500"], must_not_contain=["$1,000"])
    assert golden_check("Line managers approve up to $1500.", item)
    assert golden_check("Up to $1,500 (it used to be $10,000 for directors).", item)
    assert not golden_check("Up to $1,500; the 2023 limit was $1,000.", item)


def test_golden_check_not_enough_information() -> None:
    item = GoldenItem(input="Sabbatical?", must_contain=["don't have enough information"])
    assert golden_check("I do not have sufficient information to answer that.", item)
    assert golden_check("I don't have enough information to answer that.", item)
    assert not golden_check("Employees get 4 weeks of sabbatical.", item)
