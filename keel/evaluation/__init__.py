"""The retrieval evaluation set (`evals/`) and the metrics computed on it."""

from keel.evaluation.dataset import (
    GoldenItem,
    Passage,
    Question,
    QuestionFilters,
    load_corpus,
    load_golden,
    load_questions,
)
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

__all__ = [
    "GoldenItem",
    "Passage",
    "Question",
    "QuestionFilters",
    "aggregate",
    "citation_correct",
    "citation_precision",
    "golden_check",
    "load_corpus",
    "load_golden",
    "load_questions",
    "mrr_at_k",
    "ndcg_at_k",
    "recall_at_k",
    "says_not_enough_information",
]
