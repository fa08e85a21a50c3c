"""Safety checks as activities: the input check before a pipeline starts, the output check
(moderation + grounding) after the answer.

They wrap the pure combined layers of `keel.safety` (`check_input`, `check_output`).
Both take a millisecond or so and hold no client: workflows run them as local activities, so
the verdict is recorded in history and the workflow decides what a block, a redaction or an
ungrounded answer does.
"""

from __future__ import annotations

from temporalio import activity

from keel.contracts.rag import TextCheck
from keel.contracts.safety import SafetyPolicy, SafetyVerdict
from keel.safety import check_input, check_output


class SafetyActivities:
    """Input and output checks under one policy (the tenant default until policies are
    stored per tenant)."""

    def __init__(self, *, policy: SafetyPolicy | None = None) -> None:
        self.policy = policy or SafetyPolicy()

    @activity.defn(name="safety_check_input")
    async def check_input(self, check: TextCheck) -> SafetyVerdict:
        """Validation, injection, harmful-request and PII checks of a user's text."""
        return check_input(check.text, self.policy)

    @activity.defn(name="safety_check_output")
    async def check_output(self, check: TextCheck) -> SafetyVerdict:
        """Moderation of an answer and, when it was given a context, its grounding."""
        return check_output(
            check.text,
            user_input=check.user_input,
            system_prompt=check.system,
            context=check.context or None,
            policy=self.policy,
        )
