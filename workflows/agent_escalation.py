"""A person on call for the agent team: the durable wait and the four validated updates.

The run waits on a durable timer, costing nothing, for one of `approve`, `reject`, `edit`,
`take_over`; their validators refuse a decision when nothing is pending (or another one is
named), so the API can answer 409 instead of queueing a signal nobody reads. On timeout the
team's configured safe default applies.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from agents import prompts
    from agents.protocol import (
        clip,
    )
    from keel.contracts.agents import AgentRunResult, AgentRunStatus
    from keel.contracts.escalation import (
        ApproveInput,
        Decision,
        DecisionAction,
        EditInput,
        Escalation,
        EscalationAck,
        EscalationReason,
        RejectInput,
        TakeOverInput,
    )
    from workflows.agent_base import AgentTeamBase
    from workflows.common import publish_status

MAX_DECISIONS = 20


def _no_pending(message: str, kind: str = "NoPendingEscalation") -> ApplicationError:
    return ApplicationError(message, type=kind, non_retryable=True)


class EscalationMixin(AgentTeamBase):
    """Escalations of `AgentTeamWorkflow`: ask, wait, decide."""

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

    # -- updates (validated) ---------------------------------------------------------------
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
