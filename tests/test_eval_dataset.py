"""The evaluation set in `evals/` is loadable and internally consistent: counts, ids, gold
answers really in their gold passages, filters that the gold passages satisfy."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path

import pytest
from pydantic import ValidationError

from keel.evaluation.dataset import (
    CORPUS_DIR,
    QUESTION_KINDS,
    DatasetError,
    GoldenItem,
    Passage,
    Question,
    index_passages,
    load_corpus,
    load_golden,
    load_questions,
)
from keel.evaluation.metrics import golden_check, says_not_enough_information

MINIMUM_PER_KIND = {
    "direct": 60,
    "paraphrase": 30,
    "metadata_filter": 20,
    "distractor": 20,
    "keyword": 25,
    "multi_passage": 5,
    "unanswerable": 20,
}


@pytest.fixture(scope="module")
def corpus() -> dict[str, Passage]:
    return index_passages(load_corpus())


@pytest.fixture(scope="module")
def questions() -> list[Question]:
    return load_questions()


@pytest.fixture(scope="module")
def golden() -> list[GoldenItem]:
    return load_golden()


def test_counts(
    corpus: dict[str, Passage], questions: list[Question], golden: list[GoldenItem]
) -> None:
    assert len(corpus) >= 300
    assert len(questions) >= 150
    assert len(golden) >= 40
    kinds: Counter[str] = Counter(q.kind for q in questions)
    assert set(kinds) == set(QUESTION_KINDS)
    for kind, minimum in MINIMUM_PER_KIND.items():
        assert kinds[kind] >= minimum, kind


def test_corpus_spans_domains_and_documents(corpus: dict[str, Passage]) -> None:
    assert len(list(CORPUS_DIR.glob("*.jsonl"))) >= 8
    departments = Counter(p.department for p in corpus.values())
    assert len(departments) >= 8
    assert min(departments.values()) >= 15
    per_doc = Counter(p.doc_id for p in corpus.values())
    assert sum(1 for n in per_doc.values() if n > 1) >= 50


def test_passages_are_well_formed(corpus: dict[str, Passage]) -> None:
    docs: dict[str, tuple[str, str, dt.date, str, str]] = {}
    for passage in corpus.values():
        assert passage.licence.strip() and passage.origin.strip(), passage.passage_id
        assert 60 <= len(passage.text.split()) <= 200, passage.passage_id
        assert dt.date(2022, 1, 1) <= passage.date <= dt.date(2026, 12, 31), passage.passage_id
        assert passage.passage_id.startswith(passage.doc_id), passage.passage_id
        # Metadata belongs to the document, so all its passages agree.
        meta = (passage.source, passage.title, passage.date, passage.department, passage.doc_type)
        assert docs.setdefault(passage.doc_id, meta) == meta, passage.passage_id


def test_unique_ids(questions: list[Question], golden: list[GoldenItem]) -> None:
    passage_ids = [p.passage_id for p in load_corpus()]
    assert len(passage_ids) == len(set(passage_ids))
    qids = [q.qid for q in questions]
    assert len(qids) == len(set(qids))
    texts = [q.question for q in questions]
    assert len(texts) == len(set(texts))
    golden_ids = [g.id for g in golden]
    assert len(golden_ids) == len(set(golden_ids))


def test_gold_and_distractor_ids_exist(
    corpus: dict[str, Passage], questions: list[Question]
) -> None:
    for q in questions:
        for pid in [*q.gold_passage_ids, *q.distractor_passage_ids]:
            assert pid in corpus, (q.qid, pid)


def test_answers_are_in_their_gold_passages(
    corpus: dict[str, Passage], questions: list[Question]
) -> None:
    for q in questions:
        if not q.answerable:
            continue
        texts = [corpus[pid].text.lower() for pid in q.gold_passage_ids]
        assert any(q.answer.lower() in text for text in texts), q.qid


def test_gold_passages_satisfy_the_filters(
    corpus: dict[str, Passage], questions: list[Question]
) -> None:
    for q in questions:
        for pid in q.gold_passage_ids:
            assert q.filters.matches(corpus[pid]), (q.qid, pid)


def test_distractor_questions_name_their_trap(questions: list[Question]) -> None:
    for q in questions:
        if q.kind == "distractor":
            assert q.distractor_passage_ids, q.qid


def test_golden_items_agree_with_the_corpus(
    corpus: dict[str, Passage], questions: list[Question], golden: list[GoldenItem]
) -> None:
    by_qid = {q.qid: q for q in questions}
    unanswerable = 0
    for item in golden:
        assert item.must_contain, item.id
        q = by_qid[item.qid] if item.qid else None
        if q is None or not q.answerable:
            assert any(says_not_enough_information(s) for s in item.must_contain), item.id
            unanswerable += 1
            continue
        # The gold passages themselves pass the check: every key fact is there and no
        # distractor value is.
        gold_text = " ".join(corpus[pid].text for pid in q.gold_passage_ids)
        assert golden_check(gold_text, item), item.id
        for pid in q.distractor_passage_ids:
            if item.must_not_contain:
                assert not golden_check(corpus[pid].text, item), (item.id, pid)
    assert unanswerable >= 10


def test_loaders_take_explicit_paths(tmp_path: Path) -> None:
    one_file = sorted(CORPUS_DIR.glob("*.jsonl"))[0]
    assert load_corpus(one_file) == load_corpus(str(one_file))
    assert 0 < len(load_corpus(one_file)) < len(load_corpus())
    with pytest.raises(DatasetError, match="no dataset file"):
        load_questions(tmp_path / "missing.jsonl")
    with pytest.raises(DatasetError, match="no \\*.jsonl corpus files"):
        load_corpus(tmp_path)


def test_an_invalid_line_names_its_file_and_line(tmp_path: Path) -> None:
    good = {
        "input": "How many leave days?",
        "must_contain": ["25 days"],
        "must_not_contain": [],
    }
    path = tmp_path / "golden.jsonl"
    path.write_text(json.dumps(good) + "\n\n" + json.dumps({**good, "typo": 1}) + "\n")
    with pytest.raises(DatasetError, match=r"golden.jsonl:3"):
        load_golden(path)
    path.write_text("{not json\n")
    with pytest.raises(DatasetError, match=r"golden.jsonl:1"):
        load_golden(path)


def test_question_labels_must_be_consistent() -> None:
    base = {"qid": "x", "question": "q?", "answer": "a", "kind": "direct"}
    with pytest.raises(ValidationError, match="no gold passages"):
        Question.model_validate({**base, "gold_passage_ids": []})
    with pytest.raises(ValidationError, match="no gold passages"):
        Question.model_validate({**base, "kind": "unanswerable", "gold_passage_ids": ["p"]})
    with pytest.raises(ValidationError, match="at least two gold"):
        Question.model_validate({**base, "kind": "multi_passage", "gold_passage_ids": ["p"]})
    with pytest.raises(ValidationError, match="needs filters"):
        Question.model_validate({**base, "kind": "metadata_filter", "gold_passage_ids": ["p"]})
    with pytest.raises(ValidationError, match="both gold and distractor"):
        Question.model_validate(
            {**base, "gold_passage_ids": ["p"], "distractor_passage_ids": ["p"]}
        )
    ok = Question.model_validate(
        {
            **base,
            "kind": "metadata_filter",
            "gold_passage_ids": ["p"],
            "filters": {"department": "HR"},
        }
    )
    assert ok.filters.as_rag_filters() == {
        "date_from": None,
        "date_to": None,
        "departments": ["HR"],
        "doc_types": [],
    }
