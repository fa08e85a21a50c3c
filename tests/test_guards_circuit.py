"""The circuit breaker's state machine: every transition, probes, stragglers, serialisation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from keel.contracts.guards import CircuitConfig, CircuitState, Transition
from keel.guards.circuit import allow_request, record_failure, record_success

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
CFG = CircuitConfig(
    failure_threshold=3, cooldown=timedelta(seconds=30), probe_timeout=timedelta(minutes=5)
)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def open_circuit(now: datetime = T0) -> CircuitState:
    """Fail a closed circuit until it opens at `now`."""
    state = CircuitState()
    transition: Transition | None = None
    for _ in range(CFG.failure_threshold):
        state, transition = record_failure(state, now, CFG)
    assert transition is not None
    return state


def test_new_circuit_is_closed_and_admits() -> None:
    allowed, state, transition = allow_request(CircuitState(), T0, CFG)
    assert allowed
    assert state == CircuitState()
    assert transition is None


def test_opens_after_threshold_consecutive_failures() -> None:
    state = CircuitState()
    state, transition = record_failure(state, at(0), CFG)
    assert (state.state, state.consecutive_failures, transition) == ("closed", 1, None)
    state, transition = record_failure(state, at(1), CFG)
    assert (state.state, state.consecutive_failures, transition) == ("closed", 2, None)
    state, transition = record_failure(state, at(2), CFG)
    assert state.state == "open"
    assert state.opened_at == at(2)
    assert state.consecutive_failures == 3
    assert transition == Transition(
        from_state="closed", to_state="open", at=at(2), reason="failure_threshold_reached"
    )


def test_success_resets_the_failure_count_while_closed() -> None:
    state, _ = record_failure(CircuitState(), at(0), CFG)
    state, _ = record_failure(state, at(1), CFG)
    state, transition = record_success(state, at(2))
    assert state == CircuitState()
    assert transition is None
    state, _ = record_failure(state, at(3), CFG)
    state, _ = record_failure(state, at(4), CFG)
    assert state.state == "closed"  # non-consecutive failures never open it


def test_open_denies_until_cooldown() -> None:
    state = open_circuit()
    for seconds in (0, 1, 29.999):
        allowed, after, transition = allow_request(state, at(seconds), CFG)
        assert not allowed
        assert after == state
        assert transition is None


def test_full_cycle_closed_open_half_open_closed() -> None:
    transitions: list[Transition] = []
    state = open_circuit()
    transitions.append(
        Transition(from_state="closed", to_state="open", at=T0, reason="failure_threshold_reached")
    )

    allowed, state, transition = allow_request(state, at(30), CFG)  # cooldown reached exactly
    assert allowed
    assert state.state == "half_open"
    assert state.half_open_in_flight
    assert state.probe_admitted_at == at(30)
    assert transition is not None
    transitions.append(transition)

    # Exactly one probe: everyone else waits for its outcome.
    for seconds in (30, 31, 200):
        allowed, same, none = allow_request(state, at(seconds), CFG)
        assert (allowed, same, none) == (False, state, None)

    state, transition = record_success(state, at(40))
    assert state == CircuitState()
    assert transition is not None
    transitions.append(transition)

    assert [(t.from_state, t.to_state, t.reason) for t in transitions] == [
        ("closed", "open", "failure_threshold_reached"),
        ("open", "half_open", "cooldown_elapsed"),
        ("half_open", "closed", "probe_succeeded"),
    ]
    assert allow_request(state, at(41), CFG)[0]


def test_probe_failure_reopens_with_a_fresh_cooldown() -> None:
    state = open_circuit()
    _, state, _ = allow_request(state, at(30), CFG)
    state, transition = record_failure(state, at(35), CFG)
    assert state.state == "open"
    assert state.opened_at == at(35)  # reset, not T0
    assert not state.half_open_in_flight
    assert state.consecutive_failures == 4
    assert transition == Transition(
        from_state="half_open", to_state="open", at=at(35), reason="probe_failed"
    )
    assert not allow_request(state, at(64), CFG)[0]  # 30 s after T0 but only 29 s after reopening
    allowed, state, transition = allow_request(state, at(65), CFG)
    assert allowed
    assert state.state == "half_open"
    assert transition is not None
    assert transition.reason == "cooldown_elapsed"


def test_failures_while_open_do_not_extend_it() -> None:
    state = open_circuit()
    # Stragglers admitted before the circuit opened keep failing during the cooldown...
    for seconds in range(1, 30):
        state, transition = record_failure(state, at(seconds), CFG)
        assert transition is None
    assert state.opened_at == T0
    # ...yet the probe is still admitted once the cooldown has passed since the opening.
    allowed, state, _ = allow_request(state, at(30), CFG)
    assert allowed
    assert state.state == "half_open"


def test_successes_while_open_do_not_close_it() -> None:
    state = open_circuit()
    after, transition = record_success(state, at(5))
    assert after == state
    assert transition is None


def test_stragglers_during_half_open_are_not_taken_for_the_probe() -> None:
    state = open_circuit()
    _, probing, _ = allow_request(state, at(30), CFG)
    # A call admitted at T0 - 60 s (before the opening) fails late, while the probe is out.
    after, transition = record_failure(probing, at(31), CFG, admitted_at=at(-60))
    assert (after, transition) == (probing, None)
    after, transition = record_success(probing, at(31), admitted_at=at(-60))
    assert (after, transition) == (probing, None)
    # The probe's own outcome, identified by its admission time, decides.
    closed, transition = record_success(probing, at(32), admitted_at=at(30))
    assert closed.state == "closed"
    assert transition is not None


def test_lost_probe_is_replaced_after_probe_timeout() -> None:
    state = open_circuit()
    _, probing, _ = allow_request(state, at(30), CFG)
    assert not allow_request(probing, at(30 + 299), CFG)[0]
    allowed, replaced, transition = allow_request(probing, at(30 + 300), CFG)
    assert allowed
    assert replaced.probe_admitted_at == at(330)
    assert transition == Transition(
        from_state="half_open", to_state="half_open", at=at(330), reason="probe_timed_out"
    )
    # The lost probe reporting late is now a straggler; the new probe decides.
    assert record_failure(replaced, at(331), CFG, admitted_at=at(30)) == (replaced, None)
    reopened, transition = record_failure(replaced, at(332), CFG, admitted_at=at(330))
    assert reopened.state == "open"
    assert transition is not None


def test_half_open_without_a_probe_admits_one() -> None:
    state = CircuitState(state="half_open", consecutive_failures=3, opened_at=T0)
    assert record_failure(state, at(1), CFG) == (state, None)  # nothing to attribute it to
    allowed, probing, transition = allow_request(state, at(1), CFG)
    assert allowed
    assert probing.half_open_in_flight
    assert transition is None
    assert not allow_request(probing, at(2), CFG)[0]


def test_zero_cooldown_probes_immediately() -> None:
    cfg = CircuitConfig(failure_threshold=1, cooldown=timedelta(0))
    state, _ = record_failure(CircuitState(), T0, cfg)
    allowed, state, _ = allow_request(state, T0, cfg)
    assert allowed
    assert state.state == "half_open"
    closed, _ = record_success(state, T0, admitted_at=T0)
    assert closed.state == "closed"


def test_functions_do_not_mutate_their_input() -> None:
    state = open_circuit()
    snapshot = state.model_dump()
    allow_request(state, at(31), CFG)
    record_failure(state, at(31), CFG)
    record_success(state, at(31))
    assert state.model_dump() == snapshot
    with pytest.raises(ValidationError):
        state.state = "closed"  # type: ignore[misc]


def test_same_inputs_same_outputs() -> None:
    def run() -> list[object]:
        state = CircuitState()
        out: list[object] = []
        for seconds, event in [
            (0, "f"),
            (1, "f"),
            (2, "f"),
            (10, "a"),
            (40, "a"),
            (41, "f"),
            (80, "a"),
            (81, "s"),
        ]:
            if event == "f":
                state, transition = record_failure(state, at(seconds), CFG)
            elif event == "s":
                state, transition = record_success(state, at(seconds))
            else:
                _, state, transition = allow_request(state, at(seconds), CFG)
            out.append((state, transition))
        return out

    first = run()
    assert first == run()
    assert first[-1] == (
        CircuitState(),
        Transition(from_state="half_open", to_state="closed", at=at(81), reason="probe_succeeded"),
    )


def test_state_and_transitions_survive_a_json_round_trip() -> None:
    state = open_circuit()
    _, state, transition = allow_request(state, at(30), CFG)
    assert CircuitState.model_validate_json(state.model_dump_json()) == state
    assert transition is not None
    assert Transition.model_validate_json(transition.model_dump_json()) == transition
    assert CircuitConfig.model_validate_json(CFG.model_dump_json()) == CFG


@pytest.mark.parametrize(
    "fields",
    [
        {"state": "open"},  # open without opened_at
        {"state": "closed", "opened_at": T0},
        {"state": "closed", "half_open_in_flight": True, "probe_admitted_at": T0},
        {"state": "half_open", "opened_at": T0, "half_open_in_flight": True},  # no admission time
        {"state": "open", "opened_at": datetime(2025, 1, 1)},  # naive datetime
        {"consecutive_failures": -1},
    ],
)
def test_inconsistent_states_are_rejected(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        CircuitState.model_validate(fields)


@pytest.mark.parametrize(
    "fields",
    [
        {"failure_threshold": 0},
        {"cooldown": timedelta(seconds=-1)},
        {"probe_timeout": timedelta(0)},
    ],
)
def test_invalid_configs_are_rejected(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        CircuitConfig.model_validate(fields)
