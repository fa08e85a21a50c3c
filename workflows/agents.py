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

The class is built in layers, one module each: `workflows.agent_base` (state, record, end),
`workflows.agent_escalation` (a person on call), `workflows.agent_tools` (tool dispatch), and
this module (the loop, its phases and the model calls).
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

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
    from agents.schemas import reply_schema
    from keel.contracts.agents import (
        AgentRunRequest,
        AgentRunResult,
        AgentRunStatus,
        LoopState,
        PlanStep,
        RoleSpec,
        SafetyCheckInput,
        SafetyFlag,
        ToolOutput,
    )
    from keel.contracts.gateway import ModelCall, ModelCallResult
    from keel.contracts.llm import ChatMessage
    from keel.guards.agent_loop import (
        bound_reached,
        budget_needs_person,
        rejections_need_person,
    )
    from workflows.agent_tools import ToolDispatchMixin
    from workflows.llm import call_model
    from workflows.policies import TOOL_RETRY, TOOL_TIMEOUT

SAFETY_PATCH = "agent-draft-safety-check"
HISTORY_LINES = 3
STOP_STATUS: dict[str, AgentRunStatus] = {
    "budget_exhausted": "budget_exhausted",
    "tenant_budget_exhausted": "tenant_budget_exhausted",
}
_BASE_REPLY: dict[str, type[BaseModel]] = {
    "planner": PlannerReply,
    "specialist": SpecialistReply,
    "critic": CriticReply,
}


@workflow.defn
class AgentTeamWorkflow(ToolDispatchMixin):
    """A team of agents working a task, with bounded turns and a person on call."""

    @workflow.init
    def __init__(self, request: AgentRunRequest) -> None:
        self._request = request
        self._state = request.carry.model_copy(deep=True) if request.carry else LoopState()
        self._pending = None
        self._decision = None
        self._buffer = []
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
        # A step starts with a tool call where the provider can be held to it: a small local
        # model otherwise answers from memory (wrongly) and a critic cannot tell.
        result = await self._ask(
            role, prompts.specialist_system(role), messages, tool_first=not state.scratch
        )
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

    # -- model calls -----------------------------------------------------------------------
    def _output(self, role: RoleSpec) -> type[BaseModel]:
        if role.name in ROLES:
            return output_model(role.name)
        return _BASE_REPLY.get(role.kind, SpecialistReply)

    async def _ask(
        self, role: RoleSpec, system: str, messages: list[ChatMessage], *, tool_first: bool = False
    ) -> ModelCallResult | AgentRunResult:
        """One agent turn through the gateway; a typed stop ends the run, never a crash."""
        state, request = self._state, self._request
        # Agent prompts are structured and differ in small ways that matter (a number, a
        # verdict), so a "similar" prompt's answer is wrong here: semantic cache off.
        gateway = request.gateway.model_copy(update={"semantic_cache": False})
        call = ModelCall(
            system=system,
            messages=messages,
            tier=role.tier,
            max_tokens=role.max_tokens,
            json_schema=reply_schema(role, request.team, tool_first=tool_first),
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
