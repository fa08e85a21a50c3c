"""A provider's circuit breaker as a pure state machine.

It runs inside a per-provider entity workflow, so the functions take the current time as an
argument (`workflow.now()`), return a new `CircuitState` instead of mutating one, and report
each state change as a `Transition` the entity can keep in its history.

    closed --(failure_threshold consecutive failures)--> open
    open --(a request after cooldown; it becomes the one probe)--> half_open
    half_open --(probe succeeds)--> closed
    half_open --(probe fails)--> open, with a fresh opened_at

Outcomes that arrive while the circuit is open are ignored: they come from calls admitted
before it opened (provider calls retry for minutes), and letting them move `opened_at` would
keep a circuit open for as long as stragglers keep failing. In half_open only the probe's
outcome counts; pass `admitted_at` (when `allow_request` admitted the call) so a straggler
cannot pose as the probe.
"""

from __future__ import annotations

from datetime import datetime

from keel.contracts.guards import CircuitConfig, CircuitState, Transition

Step = tuple[CircuitState, Transition | None]


def _is_probe_outcome(state: CircuitState, admitted_at: datetime | None) -> bool:
    """Whether an outcome reported in half_open belongs to the probe in flight."""
    if not state.half_open_in_flight or state.probe_admitted_at is None:
        return False
    # Without `admitted_at` the caller vouches that this is the probe's outcome.
    return admitted_at is None or admitted_at >= state.probe_admitted_at


def record_success(
    state: CircuitState,
    now: datetime,
    *,
    admitted_at: datetime | None = None,
) -> Step:
    """Record a successful call.

    Args:
        state: The breaker before the outcome.
        now: Current workflow time (timezone-aware).
        admitted_at: When the call was admitted, if known; used to tell the probe's outcome
            from a straggler's in half_open.

    Returns:
        The new state and, when the probe's success closes the circuit, the transition.
    """
    if state.state == "closed":
        if state.consecutive_failures == 0:
            return state, None
        return CircuitState(), None
    if state.state == "open" or not _is_probe_outcome(state, admitted_at):
        return state, None
    return CircuitState(), Transition(
        from_state="half_open", to_state="closed", at=now, reason="probe_succeeded"
    )


def record_failure(
    state: CircuitState,
    now: datetime,
    cfg: CircuitConfig,
    *,
    admitted_at: datetime | None = None,
) -> Step:
    """Record a failed call (a retryable provider failure, not a client error).

    Args:
        state: The breaker before the outcome.
        now: Current workflow time (timezone-aware).
        cfg: Threshold and timings.
        admitted_at: When the call was admitted, if known; see `record_success`.

    Returns:
        The new state and, when the circuit opens or reopens, the transition.
    """
    if state.state == "closed":
        failures = state.consecutive_failures + 1
        if failures < cfg.failure_threshold:
            return CircuitState(consecutive_failures=failures), None
        return CircuitState(state="open", consecutive_failures=failures, opened_at=now), Transition(
            from_state="closed", to_state="open", at=now, reason="failure_threshold_reached"
        )
    if state.state == "open" or not _is_probe_outcome(state, admitted_at):
        return state, None
    # The probe failed: reopen and start a whole new cooldown from now.
    return CircuitState(
        state="open", consecutive_failures=state.consecutive_failures + 1, opened_at=now
    ), Transition(from_state="half_open", to_state="open", at=now, reason="probe_failed")


def allow_request(
    state: CircuitState,
    now: datetime,
    cfg: CircuitConfig,
) -> tuple[bool, CircuitState, Transition | None]:
    """Decide whether a call to the provider may start now.

    Closed admits everything. Open denies until `cfg.cooldown` has passed since `opened_at`;
    the first request after that moves the circuit to half_open and is admitted as the only
    probe. Half_open denies everything else until the probe's outcome is recorded, or until
    `cfg.probe_timeout` passes without one (the probe's run was cancelled, say), when the next
    request replaces it as the probe.

    Args:
        state: The breaker before the request.
        now: Current workflow time (timezone-aware).
        cfg: Threshold and timings.

    Returns:
        Whether the request is admitted, the new state, and the transition if there was one.
    """
    if state.state == "closed":
        return True, state, None

    if state.state == "open":
        assert state.opened_at is not None  # guaranteed by CircuitState's validator
        if now - state.opened_at < cfg.cooldown:
            return False, state, None
        probing = _admit_probe(state, now)
        return (
            True,
            probing,
            Transition(from_state="open", to_state="half_open", at=now, reason="cooldown_elapsed"),
        )

    if state.probe_admitted_at is None:
        # Half-open with no probe out is not reached through these functions, but it is a
        # valid state (e.g. written by hand to force a probe): admit one.
        return True, _admit_probe(state, now), None
    if now - state.probe_admitted_at < cfg.probe_timeout:
        return False, state, None
    return (
        True,
        _admit_probe(state, now),
        Transition(from_state="half_open", to_state="half_open", at=now, reason="probe_timed_out"),
    )


def _admit_probe(state: CircuitState, now: datetime) -> CircuitState:
    return CircuitState(
        state="half_open",
        consecutive_failures=state.consecutive_failures,
        opened_at=state.opened_at,
        half_open_in_flight=True,
        probe_admitted_at=now,
    )
