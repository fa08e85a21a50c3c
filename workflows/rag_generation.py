"""Stage 6 of `RagQueryWorkflow`: the grounded answer through the gateway and its output
check, query expansion, and the answer from the model alone when both searches failed."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.safety_checks import SafetyActivities
    from keel.contracts.gateway import (
        ModelCall,
    )
    from keel.contracts.llm import ChatMessage
    from keel.contracts.rag import (
        AssembledContext,
        ProcessedQuery,
        RagAnswer,
        RagQueryRequest,
        TenantState,
        TextCheck,
    )
    from keel.rag.prompt import (
        NOT_ENOUGH_INFORMATION,
        RULES,
        UNGROUNDED_RULES,
        citations,
        is_not_enough_information,
        system_prompt,
        user_message,
    )
    from workflows.rag_base import _add, _ms
    from workflows.rag_cache import AnswerCacheMixin


REFUSED = "I can't help with that request."
SEARCH_DOWN = (
    "I can't search the documents right now, so I can't give an answer grounded in them. "
    "Please try again shortly."
)


class GenerationMixin(AnswerCacheMixin):
    """Generation, its fallbacks and options."""

    async def _generate(
        self,
        request: RagQueryRequest,
        question: str,
        assembled: AssembledContext,
        base: RagAnswer,
    ) -> RagAnswer:
        rag = request.rag
        self._stage = "generation"
        before = workflow.now()
        call = ModelCall(
            system=system_prompt(assembled.block),
            messages=[ChatMessage(role="user", content=user_message(question))],
            model=rag.answer_model,
            tier=rag.answer_tier,
            max_tokens=rag.answer_max_tokens,
            context_tokens=assembled.tokens,
            cited_document_ids=sorted({s.document_id for s in assembled.sources}),
            stream_events=True,  # `GET /v1/runs/{id}/events` shows the answer as it comes
        )
        # With the answer-level semantic cache on, the gateway's own semantic layer would only
        # repeat that lookup after retrieval, at two gpu round trips per miss: keep its exact
        # layer (one Redis GET) and skip the semantic one for this call.
        gateway = request.gateway
        if rag.answer_cache and rag.semantic_answer_cache:
            gateway = gateway.model_copy(update={"semantic_cache": False})
        result = await self._call(call, request, gateway)
        self._timings["generation"] = _ms(workflow.now() - before)
        if not result.ok:
            return base.model_copy(
                update={
                    "answer": f"No answer: {result.detail or result.stop_reason}",
                    "status": "failed",
                    "grounded": False,
                    "usage": self._usage,  # what earlier calls of the run spent
                    "cost_usd": self._budget.spent_usd,
                }
            )
        usage, cost, text = result.usage, result.cost_usd, result.text
        if self._carry_budget:  # the run's total: expansion's calls included
            usage, cost = self._usage, self._budget.spent_usd

        self._stage = "output_safety"
        check = TextCheck(
            tenant=request.context.tenant,
            tenant_id=request.context.tenant_id,
            text=text,
            user_input=request.question,
            context=assembled.block,
            system=RULES,
        )
        verdict = await self._local(SafetyActivities.check_output, check)
        verdicts = [verdict]
        if verdict.remedy == "regenerate":
            # One more try with the cache bypassed (the cached answer is the ungrounded one).
            retry = await self._call(call.model_copy(update={"cache": False}), request, gateway)
            if retry.ok:
                usage = self._usage if self._carry_budget else _add(usage, retry.usage)
                cost = self._budget.spent_usd if self._carry_budget else cost + retry.cost_usd
                text = retry.text
                verdict = await self._local(
                    SafetyActivities.check_output, check.model_copy(update={"text": text})
                )
                verdicts.append(verdict)
        status = "answered"
        grounded = True
        if verdict.remedy is not None and verdict.blocked:
            text, status = NOT_ENOUGH_INFORMATION, "not_enough_information"
        elif verdict.blocked:
            text, status, grounded = REFUSED, "blocked", False
        elif verdict.action == "redact" and verdict.redacted_text is not None:
            text = verdict.redacted_text
        if status == "answered" and is_not_enough_information(text):
            status = "not_enough_information"
        return base.model_copy(
            update={
                "answer": text,
                "status": status,
                "grounded": grounded,
                "citations": citations(text, assembled.sources) if status == "answered" else [],
                "model": result.model,
                "provider": result.provider,
                "cache_layer": result.cache_layer,
                "usage": usage,
                "cost_usd": cost,
                "safety": verdicts,
            }
        )

    async def _without_retrieval(
        self,
        request: RagQueryRequest,
        question: str,
        tenant: TenantState,
        processed: ProcessedQuery,
    ) -> RagAnswer:
        """Both search paths failed: answer from the model alone only if the tenant allows."""
        base = RagAnswer(
            answer=SEARCH_DOWN,
            status="failed",
            grounded=False,
            degraded=True,
            notes=list(self._notes),
            filters=processed.filters,
        )
        if not tenant.allow_ungrounded:
            return base
        self._stage = "generation"
        before = workflow.now()
        result = await self._call(
            ModelCall(
                system=UNGROUNDED_RULES,
                messages=[ChatMessage(role="user", content=question)],
                model=request.rag.answer_model,
                tier=request.rag.answer_tier,
                max_tokens=request.rag.answer_max_tokens,
                cache=False,
            ),
            request,
            request.gateway,
        )
        self._timings["generation"] = _ms(workflow.now() - before)
        if not result.ok:
            return base
        return base.model_copy(
            update={
                "answer": result.text,
                "status": "answered",
                "notes": [*self._notes, "answered from the model alone: not grounded"],
                "model": result.model,
                "provider": result.provider,
                "usage": self._usage if self._carry_budget else result.usage,
                "cost_usd": self._budget.spent_usd if self._carry_budget else result.cost_usd,
            }
        )

    async def _expand(self, request: RagQueryRequest, text: str) -> list[str]:
        """Extra search terms from the cheap tier; a failure only skips the expansion."""
        result = await self._call(
            ModelCall(
                system="Rewrite the question as up to three short search queries, one per "
                "line, using other words for its key terms. Output only the queries.",
                messages=[ChatMessage(role="user", content=text)],
                tier="cheap",
                max_tokens=64,
            ),
            request,
            request.gateway,
        )
        if not result.ok:
            return []
        return [line.strip(" -*0123456789.") for line in result.text.splitlines() if line.strip()][
            :3
        ]
