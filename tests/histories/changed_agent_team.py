"""A deliberately broken deploy: the draft safety check added to AgentTeamWorkflow without
its `workflow.patched` gate. Old histories (no safety activity) must refuse to replay."""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from keel.contracts.agents import AgentRunRequest, AgentRunResult
    from workflows.agents import AgentTeamWorkflow


@workflow.defn(name="AgentTeamWorkflow")
class UngatedAgentTeam(AgentTeamWorkflow):
    """The check always runs, whatever the history says."""

    @workflow.init
    def __init__(self, request: AgentRunRequest) -> None:
        super().__init__(request)

    @workflow.run
    async def run(self, request: AgentRunRequest) -> AgentRunResult:
        return await super().run(request)

    async def _critic_turn(self) -> Any:
        if self._state.draft:
            await self._safety_check(self._state.draft)
        return await super()._critic_turn()
