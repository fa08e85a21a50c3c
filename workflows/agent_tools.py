"""A specialist's tool calls in the agent team: validation, loop guards, and dispatch to a
tool activity, the RAG child run or a person."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ValidationError

    from agents import prompts
    from agents.protocol import (
        clip,
    )
    from agents.tools import TOOLS, ToolSpec
    from keel.contracts.agents import (
        AgentRunResult,
        Finding,
        PlanStep,
        RagSearchArgs,
        RoleSpec,
        ToolOutput,
        ToolRequest,
    )
    from keel.contracts.guards import RunBudget
    from keel.contracts.llm import ChatMessage
    from keel.contracts.rag import RagQueryRequest
    from keel.guards.agent_loop import (
        classify_repeat,
        tool_signature,
    )
    from keel.guards.budget import reconcile
    from keel.guards.costing import total_tokens
    from workflows.agent_escalation import EscalationMixin
    from workflows.common import run_attributes
    from workflows.policies import TOOL_HEARTBEAT, TOOL_RETRY, TOOL_TIMEOUT
    from workflows.rag import RagQueryWorkflow


class ToolDispatchMixin(EscalationMixin):
    """Steps and tools of `AgentTeamWorkflow`."""

    def _end_step(self, role: RoleSpec, step: PlanStep, text: str, *, stopped: str = "") -> None:
        state = self._state
        state.findings.append(
            Finding(
                agent=role.name,
                instruction=clip(step.instruction, 500),
                text=clip(text, prompts.FINDING_CHARS),
                stopped=stopped,
            )
        )
        state.scratch, state.step_tool_calls = [], []
        state.step += 1
        if state.step >= len(state.plan):
            state.draft = clip(text, prompts.DRAFT_CHARS)
            state.phase = "critic"

    def _last_result(self, fallback: str) -> str:
        """The latest successful tool result of this step: what a cut-short step found."""
        for message in reversed(self._state.scratch):
            if message.role == "user" and message.content.startswith("Tool result"):
                return message.content
        return fallback

    def _exchange(self, said: str, tool: str, output: ToolOutput) -> None:
        """Put a tool call and its result into the specialist's running exchange."""
        text = clip(output.text, self._request.tools.output_chars)
        self._state.scratch = [
            *self._state.scratch,
            ChatMessage(role="assistant", content=said),
            prompts.tool_result_message(tool, output.ok, text),
        ]

    async def _tool_turn(
        self, role: RoleSpec, step: PlanStep, said: str, name: str, raw_args: dict[str, Any]
    ) -> AgentRunResult | None:
        state, limits = self._state, self._request.team.limits
        spec = TOOLS.get(name)
        if spec is None or name not in role.tools:
            known = ", ".join(role.tools) or "none"
            what = "unknown tool" if spec is None else "not one of your tools"
            self._tool_error(role, said, name, f"{name!r} is {what}; your tools: {known}")
            return None
        try:
            args = spec.args.model_validate(raw_args)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'args'}: {e['msg']}" for e in exc.errors()
            )
            self._tool_error(role, said, name, f"invalid arguments for {name}: {problems}")
            return None
        signature = tool_signature(name, args.model_dump(mode="json"))
        repeat = classify_repeat(signature, state.step_tool_calls)
        state.step_tool_calls = [*state.step_tool_calls, signature]
        if repeat == "loop":
            self._record(role.name, "tool", f"stopped: {name} called again with the same args")
            self._end_step(role, step, self._last_result(said), stopped="repeated tool call")
            return None
        if repeat == "repeat":
            self._tool_error(
                role,
                said,
                name,
                "you already made this exact call in this step and its result is above; use "
                "it, call something else, or answer",
            )
            return None
        if state.tool_calls >= limits.max_tool_calls:
            return await self._finish(
                "max_tool_calls",
                detail=f"stopped at the limit of {limits.max_tool_calls} tool calls",
            )
        state.tool_calls += 1
        if spec.runner == "human":
            question = args.model_dump().get("question", "")
            decision = await self._escalate(
                "agent_request", question, detail=f"asked by {role.name}"
            )
            done = await self._stop_on(decision)
            if done is not None:
                return done
            output = ToolOutput(ok=True, text=self._take_answer_as_instructions(decision))
        elif spec.runner == "child_workflow":
            assert isinstance(args, RagSearchArgs)
            output = await self._rag(args)
        else:
            output = await self._tool_activity(spec, args)
        self._record(
            role.name,
            "tool",
            f"{name}: {output.text}",
            content=output.text,
            tool=name,
            ok=output.ok,
            data={"args": args.model_dump(mode="json"), "ok": output.ok},
        )
        self._exchange(said, name, output)
        return None

    def _tool_error(self, role: RoleSpec, said: str, tool: str, message: str) -> None:
        self._record(role.name, "tool", f"error: {message}", tool=tool, ok=False)
        self._exchange(said, tool, ToolOutput(ok=False, text=message))

    async def _tool_activity(self, spec: ToolSpec, args: BaseModel) -> ToolOutput:
        request = self._request
        tools = request.tools
        slow = spec.name == "http_get"
        try:
            output: ToolOutput = await workflow.execute_activity(
                spec.activity,
                ToolRequest(
                    tenant=request.context.tenant,
                    tenant_id=request.context.tenant_id,
                    tool=spec.name,
                    args=args.model_dump(mode="json"),
                    config=tools,
                ),
                result_type=ToolOutput,
                task_queue=request.gateway.cpu_queue or workflow.info().task_queue,
                start_to_close_timeout=(
                    timedelta(seconds=tools.http_timeout_seconds) + TOOL_TIMEOUT
                    if slow
                    else TOOL_TIMEOUT
                ),
                heartbeat_timeout=TOOL_HEARTBEAT if slow else None,
                retry_policy=TOOL_RETRY,
            )
        except ActivityError as exc:
            cause = exc.cause
            message = cause.message if isinstance(cause, ApplicationError) else str(cause or exc)
            return ToolOutput(ok=False, text=f"{spec.name} failed: {message[:300]}")
        return output

    async def _rag(self, args: RagSearchArgs) -> ToolOutput:
        """Ask the tenant's documents through a `RagQueryWorkflow` child run.

        The child gets what is left of this run's budget, and its cost is added to this
        run's, so a run's reported cost includes the RAG answers it paid for.
        """
        state, request = self._state, self._request
        info = workflow.info()
        cap = request.context.run_budget
        remaining = RunBudget(
            max_tokens=None
            if cap.max_tokens is None
            else max(cap.max_tokens - state.budget.spent_tokens, 0),
            max_usd=None if cap.max_usd is None else max(cap.max_usd - state.budget.spent_usd, 0.0),
        )
        try:
            answer = await workflow.execute_child_workflow(
                RagQueryWorkflow.run,
                RagQueryRequest(
                    question=args.question,
                    context=request.context.model_copy(update={"run_budget": remaining}),
                    gateway=request.gateway,
                    rag=request.rag,  # the deployment's settings, as the API's queries get
                ),
                id=f"{info.workflow_id}-rag-{state.tool_calls}",
                task_queue=request.tools.rag_task_queue or info.task_queue,
                execution_timeout=timedelta(seconds=request.tools.rag_timeout_seconds),
                search_attributes=run_attributes(request.context.tenant, "rag"),
            )
        except ChildWorkflowError as exc:
            return ToolOutput(ok=False, text=f"rag_search failed: {exc.cause or exc}"[:400])
        state.budget = reconcile(state.budget, total_tokens(answer.usage), answer.cost_usd)
        sources = "; ".join(
            f"[Source {c.source}] {c.title or c.document_id}" for c in answer.citations
        )
        text = answer.answer + (f"\nSources: {sources}" if sources else "")
        return ToolOutput(
            ok=answer.status not in ("blocked", "failed"),
            text=text,
            data={"status": answer.status, "cost_usd": answer.cost_usd},
        )
