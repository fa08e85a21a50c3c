"""Document jobs: one agent role (e.g. the extractor) run over each document of a collection.

`DocumentJobWorkflow` pages through the tenant's document ids and runs one
`DocumentAgentWorkflow` child per document, at most `concurrency` at a time. Each child
reads its document, asks the model for JSON validated by the role's Output model (one
repair attempt when the reply does not validate), and stores the result as its own row, so
partial results are readable while the job runs. Document text lives only in the child's
history (bounded by `max_chars`); the job's own history holds ids and small outcomes, and it
continues-as-new between pages once it grows long.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from activities.agents import AgentActivities
    from agents import prompts
    from agents.protocol import parse_reply
    from agents.registry import output_model
    from agents.schemas import reply_schema
    from keel.contracts.documents import (
        DocumentJobProgress,
        DocumentJobRequest,
        DocumentJobResult,
        DocumentOutcome,
        DocumentPage,
        DocumentPageRequest,
        DocumentResultWrite,
        DocumentTask,
        DocumentText,
        DocumentTextRequest,
    )
    from keel.contracts.gateway import ModelCall
    from keel.contracts.guards import BudgetState
    from keel.contracts.llm import ChatMessage
    from workflows.common import publish_status
    from workflows.llm import call_model
    from workflows.policies import QUICK_RETRY, QUICK_TIMEOUT

RECENT = 10
CHILD_TIMEOUT = timedelta(minutes=15)


@workflow.defn
class DocumentAgentWorkflow:
    """One document through one role: read, extract (JSON, validated), store."""

    @workflow.run
    async def run(self, task: DocumentTask) -> DocumentOutcome:
        document: DocumentText = await workflow.execute_activity_method(
            AgentActivities.document_text,
            DocumentTextRequest(
                tenant_id=task.context.tenant_id,
                document_id=task.document_id,
                max_chars=task.max_chars,
            ),
            start_to_close_timeout=QUICK_TIMEOUT,
            retry_policy=QUICK_RETRY,
        )
        messages = prompts.extractor_messages(task.instructions, document.title, document.text)
        # Structured extraction: a semantically "similar" document's answer is not this one's.
        gateway = task.gateway.model_copy(update={"semantic_cache": False})
        budget = BudgetState()
        model = output_model(task.role.name)
        error = ""
        parsed = None
        for attempt in range(2):
            call = ModelCall(
                system=task.role.prompt,
                messages=messages,
                tier=task.role.tier,
                max_tokens=task.role.max_tokens,
                json_schema=reply_schema(task.role),
            )
            result, budget = await call_model(call, task.context, gateway, budget)
            if not result.ok:
                error = f"{result.stop_reason}: {result.detail}"
                break
            parsed, problem = parse_reply(result.text, model)
            if parsed is not None:
                break
            error = f"invalid output: {problem}"
            if attempt == 0:
                messages = [
                    *messages,
                    ChatMessage(role="assistant", content=result.text),
                    prompts.repair_message(problem),
                ]
        outcome = DocumentOutcome(
            document_id=task.document_id,
            ok=parsed is not None,
            error="" if parsed is not None else error,
            cost_usd=budget.spent_usd,
            items=len(getattr(parsed, "key_points", []) or []) if parsed is not None else 0,
        )
        await workflow.execute_activity_method(
            AgentActivities.document_store_result,
            DocumentResultWrite(
                job_id=task.job_id,
                tenant_id=task.context.tenant_id,
                document_id=task.document_id,
                ok=outcome.ok,
                result=parsed.model_dump(mode="json") if parsed is not None else {},
                error=outcome.error,
                cost_usd=outcome.cost_usd,
            ),
            start_to_close_timeout=QUICK_TIMEOUT,
            retry_policy=QUICK_RETRY,
        )
        return outcome


@workflow.defn
class DocumentJobWorkflow:
    """Fan an agent role out over a tenant's documents with bounded concurrency."""

    @workflow.init
    def __init__(self, request: DocumentJobRequest) -> None:
        self._request = request
        self._done = request.done
        self._failed = request.failed
        self._cost = request.cost_usd
        self._in_flight = 0
        self._recent: list[DocumentOutcome] = []
        self._finished = False

    @workflow.run
    async def run(self, request: DocumentJobRequest) -> DocumentJobResult:
        job_id = workflow.info().workflow_id
        after = request.after_id
        while self._done + self._failed < request.max_documents:
            if workflow.info().get_current_history_length() >= request.history_event_budget:
                workflow.continue_as_new(
                    request.model_copy(
                        update={
                            "after_id": after,
                            "done": self._done,
                            "failed": self._failed,
                            "cost_usd": self._cost,
                            "continued": request.continued + 1,
                        }
                    )
                )
            left = request.max_documents - self._done - self._failed
            page: DocumentPage = await workflow.execute_activity_method(
                AgentActivities.document_page,
                DocumentPageRequest(
                    tenant_id=request.context.tenant_id,
                    filter=request.filter,
                    after_id=after,
                    limit=min(request.page_size, left),
                ),
                start_to_close_timeout=QUICK_TIMEOUT,
                retry_policy=QUICK_RETRY,
            )
            if not page.document_ids:
                break
            await self._run_page(job_id, page.document_ids)
            after = page.document_ids[-1]
            publish_status("running", cost_usd=self._cost)
        self._finished = True
        publish_status("completed", cost_usd=self._cost)
        return DocumentJobResult(
            done=self._done,
            failed=self._failed,
            cost_usd=self._cost,
            continued=request.continued,
            job_id=job_id,
        )

    async def _run_page(self, job_id: str, document_ids: list[str]) -> None:
        request = self._request
        slots = asyncio.Semaphore(request.concurrency)

        async def one(document_id: str) -> None:
            async with slots:
                self._in_flight += 1
                try:
                    outcome = await workflow.execute_child_workflow(
                        DocumentAgentWorkflow.run,
                        DocumentTask(
                            job_id=job_id,
                            document_id=document_id,
                            context=request.context,
                            gateway=request.gateway,
                            role=request.role,
                            instructions=request.instructions,
                            max_chars=request.max_chars,
                        ),
                        id=f"{job_id}-doc-{document_id}",
                        execution_timeout=CHILD_TIMEOUT,
                    )
                except (ChildWorkflowError, ActivityError) as exc:
                    # A document that cannot be processed is a failed item, not a failed job.
                    outcome = DocumentOutcome(
                        document_id=document_id, ok=False, error=str(exc.cause or exc)[:300]
                    )
                finally:
                    self._in_flight -= 1
            self._record(outcome)

        await asyncio.gather(*(one(d) for d in document_ids))

    def _record(self, outcome: DocumentOutcome) -> None:
        if outcome.ok:
            self._done += 1
        else:
            self._failed += 1
        self._cost += outcome.cost_usd
        self._recent = [*self._recent, outcome][-RECENT:]

    @workflow.query(name="progress")
    def progress(self) -> DocumentJobProgress:
        """Counts so far and the latest outcomes; every result is in Postgres."""
        return DocumentJobProgress(
            status="finished" if self._finished else "running",
            done=self._done,
            failed=self._failed,
            in_flight=self._in_flight,
            cost_usd=self._cost,
            continued=self._request.continued,
            recent=self._recent,
        )
