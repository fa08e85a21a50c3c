"""Task queues, timeouts and retry policies, each with the reason it has the value it has."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

# Task queue names are settings (`KEEL_TASK_QUEUE_CPU/GPU`); workflows receive the GPU queue in
# their input, so a test or a deployment can point them anywhere without changing code.

# Short, cheap activities (DB reads, cache lookups): fail fast, retry a few times quickly.
QUICK_TIMEOUT = timedelta(seconds=30)
QUICK_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=5),
    maximum_attempts=5,
)

# Model and provider calls: let Temporal own retries (SDK retries are off) so every attempt is
# in history; the gateway's own fallback moves to the next model after these run out.
PROVIDER_TIMEOUT = timedelta(seconds=120)
PROVIDER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=3,
)

# Long batch work (parse, embed, upsert a batch): heartbeats detect a dead worker within the
# heartbeat timeout instead of waiting for the whole start-to-close timeout.
BATCH_TIMEOUT = timedelta(minutes=30)
BATCH_HEARTBEAT = timedelta(seconds=30)
BATCH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=10,
)

# Temporal warns at 10k history events; continue-as-new well before, so replays stay fast.
HISTORY_EVENT_BUDGET = 4_000
