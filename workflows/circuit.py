"""CircuitBreakerWorkflow: one long-lived entity per model, shared by every run and worker.

Runs ask for admission with the `acquire` update and report outcomes with the `report`
signal. Every transition (closed -> open -> half_open -> closed/open) is decided here, from
`workflow.now()`, so it is in this workflow's history and visible in the Temporal UI; the
current state is also published in the `KeelStatus` search attribute.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.gateway import GatewayActivities
    from keel.contracts.gateway import CircuitAdmission, CircuitOutcome
    from keel.contracts.guards import CircuitConfig, CircuitState, Transition
    from keel.guards.circuit import allow_request, record_failure, record_success
    from workflows.common import publish_status
    from workflows.policies import LOCAL_TIMEOUT

# Each acquire/report adds a few events; start afresh long before the 10k-event warning.
EVENTS_BEFORE_CONTINUE = 2_000
TRANSITIONS_KEPT = 50


@workflow.defn
class CircuitBreakerWorkflow:
    @workflow.init
    def __init__(
        self,
        config: CircuitConfig,
        state: CircuitState | None = None,
        transitions: list[Transition] | None = None,
    ) -> None:
        # Set before any handler runs: `acquire` arrives with the start (update-with-start).
        # The SDK hands __init__ the decoded JSON; validate it into the models here.
        self.config = CircuitConfig.model_validate(config)
        self.state = CircuitState.model_validate(state) if state is not None else CircuitState()
        # Carried across continue-as-new: a storm's acquires and reports can pass the event
        # limit mid-storm, and the breaker's history must still show how it opened.
        self.transitions: list[Transition] = [
            Transition.model_validate(t) for t in transitions or []
        ]

    @workflow.run
    async def run(
        self,
        config: CircuitConfig,
        state: CircuitState | None = None,
        transitions: list[Transition] | None = None,
    ) -> None:
        del config, state, transitions  # taken by __init__
        await self._publish()
        await workflow.wait_condition(
            lambda: (
                workflow.info().get_current_history_length() > EVENTS_BEFORE_CONTINUE
                and workflow.all_handlers_finished()
            )
        )
        workflow.continue_as_new(args=[self.config, self.state, self.transitions])

    async def _publish(self) -> None:
        # Workers read the mirrored state to admit calls to a closed circuit without asking.
        publish_status(self.state.state)
        await workflow.execute_local_activity_method(
            GatewayActivities.circuit_publish,
            args=[workflow.info().workflow_id, self.state],
            start_to_close_timeout=LOCAL_TIMEOUT,
        )

    async def _apply(self, transition: Transition | None, *, failures_changed: bool) -> None:
        if transition is not None:
            self.transitions = [*self.transitions, transition][-TRANSITIONS_KEPT:]
            workflow.logger.info(
                "circuit %s -> %s (%s)",
                transition.from_state,
                transition.to_state,
                transition.reason,
            )
        if transition is not None or failures_changed:
            await self._publish()

    @workflow.update
    async def acquire(self) -> CircuitAdmission:
        """May a call go to this model now? Open circuits answer no without waiting."""
        allowed, self.state, transition = allow_request(self.state, workflow.now(), self.config)
        await self._apply(transition, failures_changed=False)
        return CircuitAdmission(allowed=allowed, state=self.state, transition=transition)

    @workflow.signal
    async def report(self, outcome: CircuitOutcome) -> None:
        before = self.state.consecutive_failures
        admitted = (
            datetime.fromisoformat(outcome.at_attempt_started)
            if outcome.at_attempt_started
            else None
        )
        if outcome.success:
            self.state, transition = record_success(
                self.state, workflow.now(), admitted_at=admitted
            )
        else:
            self.state, transition = record_failure(
                self.state, workflow.now(), self.config, admitted_at=admitted
            )
        await self._apply(transition, failures_changed=before != self.state.consecutive_failures)

    @workflow.query
    def status(self) -> CircuitState:
        return self.state

    @workflow.query
    def history(self) -> list[Transition]:
        return self.transitions
