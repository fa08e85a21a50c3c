"""The agent team's run state and its record, shared by the parts of `AgentTeamWorkflow`.

`AgentTeamBase` declares the state every part reads and keeps the run's record: one-line turn
records in state (bounded), full turn texts buffered for the transcript table, the progress
query, and the end of the run. The parts stack on it, each in its own module:
`EscalationMixin` (a person on call: the wait, the four validated updates),
`ToolDispatchMixin` (a specialist's tool calls, including the RAG child run), and
`AgentTeamWorkflow` itself (the loop, its phases and the model calls).
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.agents import AgentActivities
    from agents.protocol import (
        clip,
        one_line,
    )
    from keel.contracts.agents import (
        AgentProgress,
        AgentRunRequest,
        AgentRunResult,
        AgentRunStatus,
        LoopState,
        TranscriptAppend,
        TranscriptEntry,
        TurnKind,
        TurnRecord,
    )
    from keel.contracts.escalation import Decision, Escalation
    from workflows.common import publish_status
    from workflows.policies import LOCAL_TIMEOUT as LOCAL
    from workflows.policies import TRANSCRIPT_RETRY

RECENT_TURNS = 20


class AgentTeamBase:
    """State and record of one team run (see the module docstring)."""

    _request: AgentRunRequest
    _state: LoopState
    _pending: Escalation | None
    _decision: Decision | None
    _buffer: list[TranscriptEntry]
    _finished: bool

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
