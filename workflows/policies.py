"""Task queues, timeouts and retry policies, each with the reason it has the value it has."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

from keel.errors import NON_RETRYABLE

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
# The attempt heartbeats while it waits on the provider: a worker that dies mid-call is
# noticed in 10 s and the attempt retried elsewhere, instead of after the 120 s above.
PROVIDER_HEARTBEAT = timedelta(seconds=10)
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

# A local activity (cache lookup, spend, safety check, fusion): milliseconds of work; one
# that takes 10 s is stuck, and its retries run inside the same workflow task.
LOCAL_TIMEOUT = timedelta(seconds=10)

# The provider attempt: PROVIDER_RETRY, but a request the provider refused (or a provider
# this worker lacks) fails at once: retrying or falling back cannot fix it.
FAIL_FAST = frozenset({t.value for t in NON_RETRYABLE} | {"ProviderNotConfigured"})
PROVIDER_RETRY_POLICY = RetryPolicy(
    initial_interval=PROVIDER_RETRY.initial_interval,
    backoff_coefficient=PROVIDER_RETRY.backoff_coefficient,
    maximum_interval=PROVIDER_RETRY.maximum_interval,
    maximum_attempts=PROVIDER_RETRY.maximum_attempts,
    non_retryable_error_types=sorted(FAIL_FAST),
)
# Asking a breaker: once more, then fail open (a breaker never stops calls to a healthy model).
BREAKER_RETRY = RetryPolicy(maximum_attempts=2)

# A batch stage: deterministic failures (a bad input) fail the batch at once; everything else
# is retried like any batch work.
STAGE_RETRY = RetryPolicy(
    initial_interval=BATCH_RETRY.initial_interval,
    backoff_coefficient=BATCH_RETRY.backoff_coefficient,
    maximum_interval=BATCH_RETRY.maximum_interval,
    maximum_attempts=BATCH_RETRY.maximum_attempts,
    non_retryable_error_types=sorted(t.value for t in NON_RETRYABLE),
)

# A reranker failure is usually a worker without the model or an exhausted device: a couple
# of quick retries (possibly on another gpu worker), then the hybrid order is good enough.
RERANK_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=5),
    maximum_attempts=3,
)

# An agent transcript write must not fail the run: retry until Postgres is back.
TRANSCRIPT_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=0,
)
# Agent tools: a few retries for infrastructure failures (a tool's own errors are outputs).
TOOL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=3,
)
TOOL_TIMEOUT = timedelta(seconds=30)
# Long enough for a busy worker to send the next beat, short enough that a dead worker's
# fetch is retried elsewhere within seconds rather than after the whole timeout.
TOOL_HEARTBEAT = timedelta(seconds=10)
