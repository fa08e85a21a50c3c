"""The RAG pipeline's pure stages: query processing, fusion, context budget, citations, keys."""

from __future__ import annotations

from datetime import date

import pytest

from activities.providers.local import parse_sources
from activities.rag.context import assemble
from activities.rag.search import decode_vector, encode_vector
from keel.contracts.rag import FuseInput, Hit, ProcessQueryInput, RagConfig, RagFilters, SourceRef
from keel.guards.answer_key import answer_key, answer_scope
from keel.rag.fusion import fuse
from keel.rag.prompt import (
    NOT_ENOUGH_INFORMATION,
    citations,
    cited_numbers,
    is_not_enough_information,
)
from keel.rag.query import process_query

TODAY = date(2025, 5, 20)
DEPARTMENTS = ["HR", "Finance", "Human Resources", "IT"]
DOC_TYPES = ["policy", "faq", "memo"]


def _process(question: str, filters: RagFilters | None = None):  # type: ignore[no-untyped-def]
    return process_query(
        ProcessQueryInput(
            question=question,
            filters=filters or RagFilters(),
            departments=DEPARTMENTS,
            doc_types=DOC_TYPES,
            today=TODAY,
        )
    )


@pytest.mark.parametrize(
    ("question", "date_from", "date_to"),
    [
        ("What was the hotel limit in 2022?", date(2022, 1, 1), date(2022, 12, 31)),
        ("Which rules changed since March 2023?", date(2023, 3, 1), None),
        ("Travel rules after 2022", date(2023, 1, 1), None),
        ("Expense rules before 2024", None, date(2023, 12, 31)),
        ("Policies between 2021 and 2023 on travel", date(2021, 1, 1), date(2023, 12, 31)),
        ("How did the 2025 and 2023 leave policies differ?", date(2023, 1, 1), date(2025, 12, 31)),
        ("What did we decide last year about travel?", date(2024, 1, 1), date(2024, 12, 31)),
        ("Updates from last month", date(2025, 4, 1), date(2025, 4, 30)),
        ("Memos from the past 6 months", date(2024, 11, 1), TODAY),
        ("How many vacation days do new employees get?", None, None),
        ("What salary inflation should FY2026 budgets assume?", None, None),
        ("What did the report from 2023 show?", date(2023, 1, 1), date(2023, 12, 31)),
        ("Rules from 2023 onwards", date(2023, 1, 1), None),
        ("Is the 2024 travel policy stricter?", date(2024, 1, 1), date(2024, 12, 31)),
    ],
)
def test_date_filters_are_read_only_when_a_phrase_scopes_the_question(
    question: str, date_from: date | None, date_to: date | None
) -> None:
    processed = _process(question)
    assert (processed.filters.date_from, processed.filters.date_to) == (date_from, date_to)


def test_departments_and_doc_types_come_from_the_tenant_vocabulary_in_scoping_phrases() -> None:
    processed = _process("What does the Human Resources department say about parental leave?")
    assert processed.filters.departments == ["Human Resources"]
    # Departments and types stay in the search text (titles name them); dates do not.
    assert processed.search_text == processed.normalized

    processed = _process("Which FAQ entries from Finance cover expense reports?")
    assert processed.filters.departments == ["Finance"]
    assert processed.filters.doc_types == ["faq"]

    processed = _process("Find policy documents on passwords in 2024")
    assert processed.filters.doc_types == ["policy"]
    assert processed.filters.date_from == date(2024, 1, 1)
    assert processed.search_text == "Find policy documents on passwords"

    processed = _process("According to the 2023 HR policy, how many sick days are paid?")
    assert (processed.filters.departments, processed.filters.doc_types) == (["HR"], ["policy"])
    assert processed.filters.date_from == date(2023, 1, 1)
    assert processed.search_text == "According to the HR policy, how many sick days are paid?"
    processed = _process("In the IT FAQs, how do I reset a token?")
    assert (processed.filters.departments, processed.filters.doc_types) == (["IT"], ["faq"])

    # A vocabulary word used as an ordinary word is not a filter, and a department next to a
    # topic ("the IT password policy") does not say whose policy it is.
    assert _process("What is our IT password policy?").filters.is_empty()
    assert _process("What is the IT password policy?").filters.departments == []
    # Unknown departments are never invented.
    assert _process("What does the Legal team require?").filters.departments == []


def test_explicit_filters_win_over_extracted_ones() -> None:
    explicit = RagFilters(departments=["IT"], date_from=date(2020, 1, 1))
    processed = _process("What did the HR department decide in 2023?", explicit)
    assert processed.filters.departments == ["IT"]
    assert processed.filters.date_from == date(2020, 1, 1)
    assert processed.filters.date_to == date(2023, 12, 31)  # not given explicitly: extracted


def test_normalisation_keeps_the_question_when_filters_are_all_of_it() -> None:
    processed = _process("  in   2023  ")
    assert processed.normalized == "in 2023"
    assert processed.search_text == "in 2023"


def test_weighted_fusion_normalises_each_list_before_weighting() -> None:
    vector = [Hit(chunk_id=1, score=0.9), Hit(chunk_id=2, score=0.8), Hit(chunk_id=3, score=0.7)]
    keyword = [Hit(chunk_id=3, score=30.0), Hit(chunk_id=4, score=10.0), Hit(chunk_id=1, score=2.0)]
    fused = fuse(FuseInput(vector=vector, keyword=keyword, k=10))
    scores = {h.chunk_id: h.score for h in fused}
    # 1: 0.7*1 + 0.3*0; 3: 0.7*0 + 0.3*1; 2: 0.7*0.5; 4: 0.3*(8/28)
    assert scores[1] == pytest.approx(0.7)
    assert scores[2] == pytest.approx(0.35)
    assert scores[3] == pytest.approx(0.3)
    assert scores[4] == pytest.approx(0.3 * 8 / 28)
    assert [h.chunk_id for h in fused] == [1, 2, 3, 4]
    assert fused[0].vector == 0.9 and fused[0].keyword == 2.0
    assert fused[1].keyword is None

    keyword_heavy = fuse(
        FuseInput(vector=vector, keyword=keyword, vector_weight=0.2, keyword_weight=0.8, k=2)
    )
    assert [h.chunk_id for h in keyword_heavy] == [3, 4]  # 0.8 * 8/28 beats 0.2 * 1


def test_rrf_uses_ranks_not_scores() -> None:
    vector = [Hit(chunk_id=1, score=0.99), Hit(chunk_id=2, score=0.1)]
    keyword = [Hit(chunk_id=2, score=100.0), Hit(chunk_id=3, score=99.0)]
    fused = fuse(
        FuseInput(vector=vector, keyword=keyword, fusion="rrf", vector_weight=1, keyword_weight=1)
    )
    assert [h.chunk_id for h in fused] == [2, 1, 3]
    assert fused[0].score == pytest.approx(1 / 62 + 1 / 61)


def test_fusion_with_one_list_missing_keeps_the_other_order() -> None:
    keyword = [Hit(chunk_id=5, score=3.0), Hit(chunk_id=6, score=1.0)]
    assert [h.chunk_id for h in fuse(FuseInput(keyword=keyword))] == [5, 6]


def _source(number: int, tokens: int, title: str = "T") -> tuple[SourceRef, str]:
    return (
        SourceRef(
            number=0,
            chunk_id=100 + number,
            document_id=f"doc-{number}",
            title=title,
            date="2024-01-02",
            department="HR",
            doc_type="policy",
            tokens=tokens,
        ),
        " ".join(f"word{i}" for i in range(tokens)),
    )


def test_context_keeps_rank_order_within_budget_and_cuts_only_the_first() -> None:
    found = [_source(1, 100), _source(2, 500), _source(3, 50)]
    assembled = assemble(found, token_budget=200)
    assert [s.chunk_id for s in assembled.sources] == [101, 103]  # 500 does not fit: skipped
    assert [s.number for s in assembled.sources] == [1, 2]
    assert assembled.tokens <= 200
    parsed = parse_sources(assembled.block)
    assert [p.number for p in parsed] == [1, 2]
    assert parsed[0].title == "T (2024-01-02, HR, policy)"

    first_too_big = assemble([_source(1, 1000)], token_budget=100)
    assert len(first_too_big.sources) == 1 and first_too_big.sources[0].truncated
    assert len(parse_sources(first_too_big.block)[0].text.split()) < 120


def test_citations_map_source_numbers_and_drop_invented_ones() -> None:
    sources = [_source(1, 5)[0].model_copy(update={"number": n}) for n in (1, 2)]
    answer = "A [Source 2]. B [Sources 1, 2]. C [Source 7]."
    assert cited_numbers(answer) == [2, 1, 7]
    assert [(c.source, c.document_id) for c in citations(answer, sources)] == [
        (2, "doc-1"),
        (1, "doc-1"),
    ]
    assert is_not_enough_information(NOT_ENOUGH_INFORMATION)
    assert is_not_enough_information("Sorry, I don't have enough information for that.")
    assert not is_not_enough_information("Yes [Source 1].")


def test_answer_keys_change_with_everything_an_answer_depends_on() -> None:
    rag = RagConfig()
    scope = answer_scope("t1", RagFilters(), rag, "gen1")
    key = answer_key(scope, "How many days?")
    assert key == answer_key(scope, "  How many   days? ")
    assert key != answer_key(scope, "How many weeks?")
    assert key != answer_key(answer_scope("t2", RagFilters(), rag, "gen1"), "How many days?")
    assert key != answer_key(answer_scope("t1", RagFilters(), rag, "gen2"), "How many days?")
    other_filters = RagFilters(departments=["HR"])
    assert key != answer_key(answer_scope("t1", other_filters, rag, "gen1"), "How many days?")
    reweighted = rag.model_copy(update={"vector_weight": 0.5})
    assert key != answer_key(answer_scope("t1", RagFilters(), reweighted, "gen1"), "How many days?")
    # Operational knobs do not split the cache.
    slower = rag.model_copy(update={"retrieval_timeout_seconds": 99.0})
    assert key == answer_key(answer_scope("t1", RagFilters(), slower, "gen1"), "How many days?")


def test_query_vectors_round_trip_through_base64() -> None:
    vector = [0.25, -0.5, 1.0]
    assert list(decode_vector(encode_vector(vector))) == vector
    assert len(encode_vector([0.1] * 384)) < 2100
