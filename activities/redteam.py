"""The red-team suite's check as an activity: the same layers, chosen by channel, that the RAG
and agent workflows run on user input, retrieved documents and tool traffic."""

from __future__ import annotations

from temporalio import activity

from keel.contracts.redteam import ScreenCase
from keel.contracts.safety import SafetyPolicy, SafetyVerdict
from keel.redteam.runner import RedTeamCase, default_check


class RedTeamActivities:
    def __init__(self, *, policy: SafetyPolicy | None = None) -> None:
        self.policy = policy or SafetyPolicy()

    @activity.defn(name="safety_screen_case")
    async def screen_case(self, case: ScreenCase) -> SafetyVerdict:
        probe = RedTeamCase(
            id=case.id,
            category="screen",
            text=case.text,
            source="keel redteam",
            expected="block",
            channel=case.channel,
        )
        return default_check(probe, self.policy)
