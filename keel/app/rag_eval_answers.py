"""`keel eval`'s answer half: answers from the offline model over the reranked top 5, and
how well they cite, abstain and stay grounded."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from activities.providers.base import Provider
from activities.rag.context import assemble_context
from keel.app.rag_eval_report import AnswerMetrics, mean
from keel.contracts.llm import ChatMessage, LlmRequest
from keel.contracts.rag import Hit, RagConfig
from keel.evaluation import (
    GoldenItem,
    Question,
    citation_correct,
    citation_precision,
    golden_check,
    says_not_enough_information,
)
from keel.rag.prompt import cited_numbers, system_prompt, user_message


async def answer_with_local_model(
    engine: AsyncEngine,
    provider: Provider,
    tenant_id: uuid.UUID,
    question: str,
    top: list[Hit],
    rag: RagConfig,
    passage_of: dict[int, str],
) -> dict[str, Any]:
    """Stages 5 and 6 with the offline provider and the production prompt."""
    from keel.safety import grounded_share

    assembled = await assemble_context(
        engine, tenant_id=tenant_id, hits=top, token_budget=rag.context_token_budget
    )
    if not assembled.sources:
        return {"answer": "", "nei": True, "cited": [], "grounding": None}
    response = await provider.complete(
        LlmRequest(
            model="local-extractive",  # a llama.cpp server answers with its one model anyway
            system=system_prompt(assembled.block),
            messages=[ChatMessage(role="user", content=user_message(question))],
            max_tokens=rag.answer_max_tokens,
        )
    )
    numbers = {s.number: s.chunk_id for s in assembled.sources}
    nei = says_not_enough_information(response.text)
    return {
        "answer": response.text,
        "nei": nei,
        "cited": [passage_of[numbers[n]] for n in cited_numbers(response.text) if n in numbers],
        "grounding": None if nei else grounded_share(response.text, assembled.block),
    }


def answer_metrics(
    questions: list[Question], records: list[dict[str, Any]], golden: list[GoldenItem]
) -> AnswerMetrics:
    pairs = list(zip(questions, records, strict=True))
    answerable = [(q, r) for q, r in pairs if q.answerable]
    unanswerable = [(q, r) for q, r in pairs if not q.answerable]
    precision = [
        citation_precision(r["cited"], q.gold_passage_ids) for q, r in answerable if r["cited"]
    ]
    grounding = [float(r["grounding"]) for r in records if r.get("grounding") is not None]
    answers = {q.qid: r.get("answer", "") for q, r in pairs}
    checks = [item for item in golden if item.qid in answers]
    return AnswerMetrics(
        answerable=len(answerable),
        unanswerable=len(unanswerable),
        citation_correct=mean(
            [float(citation_correct(r["cited"], q.gold_passage_ids)) for q, r in pairs]
        ),
        citation_precision=mean(precision),
        nei_on_unanswerable=mean([float(r["nei"]) for _, r in unanswerable]),
        nei_on_answerable=mean([float(r["nei"]) for _, r in answerable]),
        grounding_share=mean(grounding),
        golden=len(checks),
        golden_pass=mean([float(golden_check(answers[str(c.qid)], c)) for c in checks]),
    )
