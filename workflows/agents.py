"""AgentTeamWorkflow: planner -> specialists (with tools) -> critic, until the critic accepts,
a person decides, or a bound stops the run.

One loop iteration is one *turn* of one agent (a model call through `call_model`) and, for
a specialist, the tool call it asked for (an activity, the RAG child run, or a question to
a person). Where the round is (`LoopState.phase`) is data, so the run can continue-as-new
between any two turns with a compact state and pick up exactly there.

A person is called (`_escalate`) when the critic rejects N drafts in a row, the budget
passes a threshold, or an agent asks. The run then waits on a durable timer, costing
nothing, for one of the updates `approve`, `reject`, `edit`, `take_over`; their validators
refuse a decision when nothing is pending, so the API can answer 409 instead of queueing a
signal nobody reads. On timeout the configured safe default applies.

Full turn texts go to Postgres (`agent_transcript_append`); history and the continue-as-new
input keep counts, one-line summaries and the bounded state of the current round.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ValidationError

    from activities.agents import AgentActivities
    from agents import prompts
    from agents.protocol import (
        CriticReply,
        PlannerReply,
        SpecialistReply,
        clip,
        extract_json,
        one_line,
        parse_reply,
    )
    from agents.registry import ROLES, output_model
    from agents.tools import TOOLS, ToolSpec
    from keel.contracts.agents import (
        AgentProgress,
        AgentRunRequest,
        AgentRunResult,
        AgentRunStatus,
        ApproveInput,
        Decision,
        DecisionAction,
        EditInput,
        Escalation,
        EscalationAck,
        EscalationReason,
        Finding,
        LoopState,
        PlanStep,
        RagSearchArgs,
        RejectInput,
        RoleSpec,
        SafetyCheckInput,
        SafetyFlag,
        TakeOverInput,
        ToolOutput,
        ToolRequest,
        TranscriptAppend,
        TranscriptEntry,
        TurnKind,
        TurnRecord,
    )
    from keel.contracts.gateway import ModelCall, ModelCallResult
    from keel.contracts.guards import RunBudget
    from keel.contracts.llm import ChatMessage
    from keel.contracts.rag import RagQueryRequest
    from keel.guards.agent_loop import (
        bound_reached,
        budget_needs_person,
        classify_repeat,
        rejections_need_person,
        tool_signature,
    )
    from keel.guards.budget import reconcile
    from keel.guards.costing import total_tokens
    from workflows.common import publish_status, run_attributes
    from workflows.llm import call_model
    from workflows.policies import LOCAL_TIMEOUT as LOCAL
    from workflows.policies import TOOL_HEARTBEAT, TOOL_RETRY, TOOL_TIMEOUT, TRANSCRIPT_RETRY
    from workflows.rag import RagQueryWorkflow

SAFETY_PATCH = "agent-draft-safety-check"
RECENT_TURNS = 20
HISTORY_LINES = 3
MAX_DECISIONS = 20
STOP_STATUS: dict[str, AgentRunStatus] = {
    "budget_exhausted": "budget_exhausted",
    "tenant_budget_exhausted": "tenant_budget_exhausted",
}
_BASE_REPLY: dict[str, type[BaseModel]] = {
    "planner": PlannerReply,
    "specialist": SpecialistReply,
    "critic": CriticReply,
}


def _no_pending(message: str, kind: str = "NoPendingEscalation") -> ApplicationError:
    return ApplicationError(message, type=kind, non_retryable=True)


@workflow.defn
class AgentTeamWorkflow:
    """A team of agents working a task, with bounded turns and a person on call."""

    @workflow.init
    def __init__(self, request: AgentRunRequest) -> None:
        self._request = request
        self._state = request.carry.model_copy(deep=True) if request.carry else LoopState()
        self._pending: Escalation | None = None
        self._decision: Decision | None = None
        self._buffer: list[TranscriptEntry] = []
        self._finished = False

    # -- the loop ------------------------------------------------------------------------
    @workflow.run
    async def run(self, request: AgentRunRequest) -> AgentRunResult:
        state = self._state
        limits = request.team.limits
        if state.started_at is None:
            state.started_at = workflow.now()
        while True:
            if self._history_is_long():
                await self._continue_as_new()
            bound = bound_reached(state, limits, workflow.now())
            if bound is not None:
                return await self._finish(bound, detail=self._bound_detail(bound))
            if budget_needs_person(state, limits, request.context.run_budget):
                state.budget_escalated = True
                outcome = await self._budget_escalation()
            elif state.phase == "plan":
                outcome = await self._plan_turn()
            elif state.phase == "specialist":
                outcome = await self._specialist_turn()
            else:
                outcome = await self._critic_turn()
            if outcome is not None:
                return outcome
            await self._flush()

    def _history_is_long(self) -> bool:
        info = workflow.info()
        budget = self._request.team.limits.history_event_budget
        return info.get_current_history_length() >= budget or info.is_continue_as_new_suggested()

    async def _continue_as_new(self) -> None:
        await self._flush()
        await workflow.wait_condition(workflow.all_handlers_finished)
        carry = self._state.model_copy(update={"continued": self._state.continued + 1})
        workflow.continue_as_new(self._request.model_copy(update={"carry": carry}))

    def _bound_detail(self, bound: str) -> str:
        limits = self._request.team.limits
        if bound == "max_turns":
            return f"stopped after {limits.max_turns} turns without an accepted answer"
        return f"stopped at the deadline of {limits.deadline_seconds:g} s of active work"

    # -- phases --------------------------------------------------------------------------
    async def _plan_turn(self) -> AgentRunResult | None:
        state, team = self._state, self._request.team
        state.round += 1
        messages = prompts.planner_messages(
            self._request.task, state.instructions, state.history, state.feedback
        )
        result = await self._ask(team.planner, prompts.planner_system(team), messages)
        if isinstance(result, AgentRunResult):
            return result
        reply, _ = parse_reply(result.text, self._output(team.planner))
        plan = reply if isinstance(reply, PlannerReply) else None
        if plan is not None and plan.ask_human and not plan.steps:
            decision = await self._escalate(
                "agent_request", plan.ask_human, detail=f"asked by {team.planner.name}"
            )
            done = await self._stop_on(decision)
            if done is None:
                self._take_answer_as_instructions(decision)
                state.round -= 1  # the planner plans this round again, with the answer
            return done
        steps = []
        for planned in plan.steps if plan is not None else []:
            role = team.specialist(planned.agent) or team.specialists[0]
            steps.append(PlanStep(agent=role.name, instruction=planned.instruction))
        if not steps:
            # Unreadable or empty plan: one step by the first specialist, so the round still
            # produces a draft the critic can judge.
            fix = f" Address this feedback: {state.feedback}" if state.feedback else ""
            steps = [PlanStep(agent=team.specialists[0].name, instruction="Answer the task." + fix)]
        state.plan, state.step, state.findings = steps, 0, []
        state.scratch, state.step_tool_calls = [], []
        state.phase = "specialist"
        return None

    async def _specialist_turn(self) -> AgentRunResult | None:
        state, team = self._state, self._request.team
        step = state.plan[state.step]
        role = team.specialist(step.agent) or team.specialists[0]
        messages = prompts.specialist_messages(
            self._request.task,
            state.instructions,
            state.feedback,
            step,
            state.findings,
            state.scratch,
        )
        result = await self._ask(role, prompts.specialist_system(role), messages)
        if isinstance(result, AgentRunResult):
            return result
        if extract_json(result.text) is None:
            self._end_step(role, step, result.text)  # free text is an answer
            return None
        reply, problem = parse_reply(result.text, self._output(role))
        rounds = len(state.scratch) // 2
        limits = team.limits
        if not isinstance(reply, SpecialistReply):
            if rounds >= limits.max_tool_rounds_per_step:
                self._end_step(role, step, result.text, stopped="unreadable replies")
                return None
            self._exchange(result.text, "reply", ToolOutput(ok=False, text=problem))
            return None
        if reply.tool:
            if rounds >= limits.max_tool_rounds_per_step:
                self._end_step(role, step, self._last_result(result.text), stopped="tool rounds")
                return None
            return await self._tool_turn(role, step, result.text, reply.tool, reply.args)
        self._end_step(role, step, reply.answer or result.text)
        return None

    async def _critic_turn(self) -> AgentRunResult | None:
        state, team = self._state, self._request.team
        # Added after the first release: runs recorded before it have no safety activity
        # here, and `patched` keeps them replaying as they ran (see tests/test_replay.py).
        if team.limits.safety_check and state.draft and workflow.patched(SAFETY_PATCH):
            flag = await self._safety_check(state.draft)
            if flag.flagged:
                decision = await self._escalate(
                    "safety",
                    f"The safety check flagged the draft ({one_line(flag.reason, 300)}). "
                    "Approve it as is, edit it, take over, or reject the run?",
                    detail=f"checker: {flag.checker}; signals: {', '.join(flag.signals[:8])}",
                )
                return await self._resolve_draft(decision)
        messages = prompts.critic_messages(
            self._request.task, state.instructions, state.draft, state.findings
        )
        result = await self._ask(team.critic, team.critic.prompt, messages)
        if isinstance(result, AgentRunResult):
            return result
        reply, _ = parse_reply(result.text, self._output(team.critic))
        # An unreadable verdict is a rejection: only an explicit accept publishes a draft.
        verdict = (
            reply
            if isinstance(reply, CriticReply)
            else CriticReply(
                verdict="reject", feedback=f"unreadable verdict: {one_line(result.text)}"
            )
        )
        if verdict.verdict == "accept":
            return await self._finish("accepted", answer=state.draft)
        state.rejections += 1
        state.feedback = clip(verdict.feedback, 1000)
        state.history = [*state.history, f"draft rejected: {one_line(verdict.feedback, 160)}"][
            -HISTORY_LINES:
        ]
        state.phase, state.plan, state.step, state.findings = "plan", [], 0, []
        if rejections_need_person(state, team.limits):
            decision = await self._escalate(
                "critic_rejections",
                f"The critic rejected the draft {state.rejections} times in a row (last "
                f"feedback: {one_line(verdict.feedback, 300)}). Approve the draft, edit it or "
                "the instructions, take over, or reject the run?",
            )
            return await self._resolve_draft(decision)
        return None

    async def _budget_escalation(self) -> AgentRunResult | None:
        state = self._state
        cap = self._request.context.run_budget.max_usd or 0.0
        decision = await self._escalate(
            "budget_threshold",
            f"The run has spent ${state.budget.spent_usd:.4f} of its ${cap:.4f} budget. "
            "Approve to continue, or reject to stop.",
        )
        done = await self._stop_on(decision)
        if done is None and decision.action == "edit":
            self._apply_edit(decision)
        return done

    async def _safety_check(self, draft: str) -> SafetyFlag:
        request = self._request
        try:
            flag: SafetyFlag = await workflow.execute_activity_method(
                AgentActivities.safety_check,
                SafetyCheckInput(
                    tenant=request.context.tenant,
                    tenant_id=request.context.tenant_id,
                    text=draft,
                    task=request.task,
                ),
                task_queue=request.gateway.cpu_queue or workflow.info().task_queue,
                start_to_close_timeout=TOOL_TIMEOUT,
                retry_policy=TOOL_RETRY,
            )
        except ActivityError as exc:
            # Fail closed: a draft nobody could check goes to a person, not to the user.
            flag = SafetyFlag(
                flagged=True, reason=f"the safety check failed: {exc.cause or exc}", checker="none"
            )
        self._record(
            "safety",
            "system",
            f"safety check: {'flagged: ' + flag.reason if flag.flagged else 'passed'}",
            data=flag.model_dump(mode="json"),
        )
        return flag

    # -- steps and tools -----------------------------------------------------------------
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

    # -- model calls -----------------------------------------------------------------------
    def _output(self, role: RoleSpec) -> type[BaseModel]:
        if role.name in ROLES:
            return output_model(role.name)
        return _BASE_REPLY.get(role.kind, SpecialistReply)

    async def _ask(
        self, role: RoleSpec, system: str, messages: list[ChatMessage]
    ) -> ModelCallResult | AgentRunResult:
        """One agent turn through the gateway; a typed stop ends the run, never a crash."""
        state, request = self._state, self._request
        # Agent prompts are structured and differ in small ways that matter (a number, a
        # verdict), so a "similar" prompt's answer is wrong here: semantic cache off.
        gateway = request.gateway.model_copy(update={"semantic_cache": False})
        call = ModelCall(
            system=system, messages=messages, tier=role.tier, max_tokens=role.max_tokens
        )
        result, state.budget = await call_model(call, request.context, gateway, state.budget)
        if not result.ok:
            status = STOP_STATUS.get(result.stop_reason or "", "failed")
            self._record(role.name, "system", f"model call stopped: {result.detail}")
            return await self._finish(status, detail=result.detail)
        state.turns += 1
        state.llm_calls += 1
        self._record(
            role.name,
            "llm",
            result.text,
            content=result.text,
            model=result.model,
            cache_layer=result.cache_layer,
            cost_usd=result.cost_usd,
            data={"model": result.model, "cache_layer": result.cache_layer},
        )
        return result

    # -- escalation ------------------------------------------------------------------------
    async def _escalate(
        self, reason: EscalationReason, question: str, *, detail: str = ""
    ) -> Decision:
        """Ask a person and wait (durable timer, no polling) for a decision or the timeout."""
        state, limits = self._state, self._request.team.limits
        state.escalations += 1
        opened = workflow.now()
        timeout = timedelta(seconds=limits.escalation_timeout_seconds)
        self._pending = Escalation(
            id=f"esc-{state.escalations}",
            reason=reason,
            question=clip(question, 2000),
            draft=state.draft,
            detail=detail,
            opened_at=opened,
            expires_at=opened + timeout,
            on_timeout=limits.on_escalation_timeout,
        )
        self._decision = None
        self._record("system", "system", f"escalated ({reason}): {question}")
        await self._flush()
        publish_status("awaiting_human", cost_usd=state.budget.spent_usd)
        try:
            await workflow.wait_condition(lambda: self._decision is not None, timeout=timeout)
            decision = self._decision
            assert decision is not None
        except TimeoutError:
            decision = Decision(
                escalation_id=self._pending.id,
                reason=reason,
                action=limits.on_escalation_timeout,
                by="timeout",
                text=f"no decision within {limits.escalation_timeout_seconds:g} s",
                timed_out=True,
                at=workflow.now(),
            )
        state.waited_seconds += (workflow.now() - opened).total_seconds()
        self._pending, self._decision = None, None
        state.decisions = [*state.decisions, decision][-MAX_DECISIONS:]
        self._record(
            decision.by or "person",
            "human",
            f"{decision.action}{' (timeout)' if decision.timed_out else ''}: {decision.text}",
            content=decision.text,
            data=decision.model_dump(mode="json"),
        )
        publish_status("running", cost_usd=state.budget.spent_usd)
        return decision

    async def _stop_on(self, decision: Decision) -> AgentRunResult | None:
        """End the run for `reject` and `take_over`; None when the run goes on."""
        if decision.action == "reject":
            status: AgentRunStatus = "escalation_expired" if decision.timed_out else "rejected"
            return await self._finish(status, detail=decision.text)
        if decision.action == "take_over":
            return await self._finish("taken_over", answer=decision.text)
        return None

    async def _resolve_draft(self, decision: Decision) -> AgentRunResult | None:
        """A decision about a draft: approve publishes it, edit sends the team back to work."""
        if decision.action == "approve":
            return await self._finish("approved", answer=self._state.draft, detail=decision.text)
        done = await self._stop_on(decision)
        if done is None:
            self._apply_edit(decision)
        return done

    def _apply_edit(self, decision: Decision) -> None:
        state = self._state
        state.rejections = 0
        if decision.instructions:
            state.instructions = clip(decision.instructions, 4000)
        if decision.action == "edit" and decision.text:
            # An edited draft goes back to the critic; edited instructions start a new round.
            state.draft = clip(decision.text, prompts.DRAFT_CHARS)
            state.phase = "critic"
        elif decision.action == "edit":
            state.phase, state.plan, state.step, state.findings = "plan", [], 0, []

    def _take_answer_as_instructions(self, decision: Decision) -> str:
        """A person's answer to an agent's question, also kept as instructions for the team."""
        answer = decision.instructions or decision.text
        if answer:
            self._state.instructions = clip(f"{self._state.instructions}\n{answer}".strip(), 4000)
        if decision.timed_out:
            return "No person answered in time; go on with your best judgement."
        return f"A person answered ({decision.action}): {answer or 'go ahead'}"

    # -- updates (validated) and the progress query ---------------------------------------
    def _check_pending(self, escalation_id: str) -> Escalation:
        pending = self._pending
        if pending is None or self._decision is not None:
            raise _no_pending("no escalation is pending for this run")
        if escalation_id and escalation_id != pending.id:
            raise _no_pending(
                f"escalation {escalation_id!r} is not pending (pending: {pending.id!r})",
                "EscalationMismatch",
            )
        return pending

    def _decide(
        self,
        action: DecisionAction,
        escalation_id: str,
        *,
        by: str,
        text: str = "",
        instructions: str = "",
    ) -> EscalationAck:
        pending = self._check_pending(escalation_id)  # again: two decisions may race
        self._decision = Decision(
            escalation_id=pending.id,
            reason=pending.reason,
            action=action,
            by=by or "person",
            text=text,
            instructions=instructions,
            at=workflow.now(),
        )
        return EscalationAck(escalation_id=pending.id, action=action)

    @workflow.update
    def approve(self, decision: ApproveInput) -> EscalationAck:
        """Publish the draft (draft escalations), or let the run go on (the others)."""
        return self._decide("approve", decision.escalation_id, by=decision.by, text=decision.note)

    @approve.validator
    def _validate_approve(self, decision: ApproveInput) -> None:
        self._check_pending(decision.escalation_id)

    @workflow.update
    def reject(self, decision: RejectInput) -> EscalationAck:
        """Stop the run without an answer."""
        return self._decide("reject", decision.escalation_id, by=decision.by, text=decision.reason)

    @reject.validator
    def _validate_reject(self, decision: RejectInput) -> None:
        self._check_pending(decision.escalation_id)

    @workflow.update
    def edit(self, decision: EditInput) -> EscalationAck:
        """Replace the draft (back to the critic) and/or the instructions (plan again)."""
        return self._decide(
            "edit",
            decision.escalation_id,
            by=decision.by,
            text=decision.draft or "",
            instructions=decision.instructions or "",
        )

    @edit.validator
    def _validate_edit(self, decision: EditInput) -> None:
        self._check_pending(decision.escalation_id)
        if not (decision.draft or "").strip() and not (decision.instructions or "").strip():
            raise ApplicationError(
                "edit needs a new `draft` or new `instructions`",
                type="InvalidDecision",
                non_retryable=True,
            )

    @workflow.update
    def take_over(self, decision: TakeOverInput) -> EscalationAck:
        """A person supplies the final answer; the agents stop."""
        return self._decide(
            "take_over", decision.escalation_id, by=decision.by, text=decision.answer
        )

    @take_over.validator
    def _validate_take_over(self, decision: TakeOverInput) -> None:
        self._check_pending(decision.escalation_id)
        if not decision.answer.strip():
            raise ApplicationError(
                "take_over needs the `answer`", type="InvalidDecision", non_retryable=True
            )

    @workflow.query(name="progress")
    def progress(self) -> AgentProgress:
        """Turns, counts, cost and the pending escalation: what `GET /v1/runs/{id}` shows."""
        state, request = self._state, self._request
        status = (
            "finished"
            if self._finished
            else ("awaiting_human" if self._pending is not None else "running")
        )
        return AgentProgress(
            status=status,
            team=request.team.name,
            phase=state.phase,
            round=state.round,
            turns=state.turns,
            llm_calls=state.llm_calls,
            tool_calls=state.tool_calls,
            rejections=state.rejections,
            escalations=state.escalations,
            cost_usd=state.budget.spent_usd,
            tokens=state.budget.spent_tokens,
            continued=state.continued,
            transcript_id=workflow.info().workflow_id,
            draft=clip(state.draft, 2000),
            pending_escalation=self._pending,
            recent_turns=state.recent,
            limits=request.team.limits,
        )

    # -- transcript and the end ------------------------------------------------------------
    def _record(
        self,
        role: str,
        kind: TurnKind,
        summary: str,
        *,
        content: str | None = None,
        model: str = "",
        cache_layer: str = "",
        cost_usd: float = 0.0,
        tool: str = "",
        ok: bool = True,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Note a turn: a one-line record in state, the full text queued for the transcript."""
        state = self._state
        state.transcript_seq += 1
        record = TurnRecord(
            n=state.transcript_seq,
            round=state.round,
            role=role,
            kind=kind,
            summary=one_line(summary, 280),
            model=model,
            cache_layer=cache_layer,
            cost_usd=cost_usd,
            tool=tool,
            ok=ok,
            at=workflow.now(),
        )
        state.recent = [*state.recent, record][-RECENT_TURNS:]
        self._buffer.append(
            TranscriptEntry(
                seq=state.transcript_seq,
                round=state.round,
                turn=state.turns,
                role=role,
                kind=kind,
                content=summary if content is None else content,
                data={**(data or {}), "cost_usd": cost_usd} if cost_usd else (data or {}),
            )
        )

    async def _flush(self) -> None:
        if not self._buffer:
            return
        batch = TranscriptAppend(
            transcript_id=workflow.info().workflow_id,
            tenant_id=self._request.context.tenant_id,
            run_id=workflow.info().run_id,
            entries=self._buffer,
        )
        self._buffer = []
        # A regular activity, not a local one: it ends the workflow task, so a run whose turns
        # are all cache hits (local activities only) still records each step in history as
        # it goes, and its history length (the continue-as-new trigger) stays current.
        await workflow.execute_activity_method(
            AgentActivities.transcript_append,
            batch,
            task_queue=self._request.gateway.cpu_queue or workflow.info().task_queue,
            start_to_close_timeout=LOCAL,
            retry_policy=TRANSCRIPT_RETRY,
        )

    async def _finish(
        self, status: AgentRunStatus, *, answer: str = "", detail: str = ""
    ) -> AgentRunResult:
        state = self._state
        state.phase = "done"
        self._record("system", "system", f"finished: {status}. {detail}".strip())
        await self._flush()
        publish_status(status, cost_usd=state.budget.spent_usd)
        self._finished = True
        await workflow.wait_condition(workflow.all_handlers_finished)
        return AgentRunResult(
            status=status,
            answer=answer,
            draft=state.draft,
            detail=detail,
            rounds=state.round,
            turns=state.turns,
            llm_calls=state.llm_calls,
            tool_calls=state.tool_calls,
            escalations=state.escalations,
            continued=state.continued,
            cost_usd=state.budget.spent_usd,
            tokens=state.budget.spent_tokens,
            transcript_id=workflow.info().workflow_id,
            decisions=state.decisions,
        )
