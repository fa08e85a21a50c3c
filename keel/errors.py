"""Typed activity failures.

Activities raise `ApplicationError` with a `type` from `ErrorType`, so workflows and the API
can branch on the kind of failure without parsing messages. Whether Temporal retries is
decided here, once: client mistakes and policy refusals never get better by retrying.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Any

from temporalio.exceptions import ApplicationError


class ErrorType(StrEnum):
    """Failure kinds shared by activities, workflows and the API."""

    INVALID_INPUT = "InvalidInput"
    NOT_FOUND = "NotFound"
    UNSUPPORTED_FORMAT = "UnsupportedFormat"
    TOO_LARGE = "TooLarge"
    PROVIDER_RATE_LIMITED = "ProviderRateLimited"
    PROVIDER_OVERLOADED = "ProviderOverloaded"
    PROVIDER_UNAVAILABLE = "ProviderUnavailable"
    PROVIDER_TIMEOUT = "ProviderTimeout"
    PROVIDER_BAD_RESPONSE = "ProviderBadResponse"
    PROVIDER_REJECTED = "ProviderRejected"  # 400, 401, 403, content policy
    BUDGET_EXHAUSTED = "BudgetExhausted"
    RATE_LIMITED = "RateLimited"
    SAFETY_BLOCKED = "SafetyBlocked"
    DEPENDENCY_DOWN = "DependencyDown"
    # Redis (the exact caches) cannot be reached: the caller answers without the cache.
    CACHE_UNAVAILABLE = "CacheUnavailable"


NON_RETRYABLE: frozenset[ErrorType] = frozenset(
    {
        ErrorType.INVALID_INPUT,
        ErrorType.NOT_FOUND,
        ErrorType.UNSUPPORTED_FORMAT,
        ErrorType.TOO_LARGE,
        ErrorType.PROVIDER_REJECTED,
        ErrorType.BUDGET_EXHAUSTED,
        ErrorType.SAFETY_BLOCKED,
        ErrorType.CACHE_UNAVAILABLE,
    }
)


def failure(
    kind: ErrorType,
    message: str,
    *details: Any,
    retry_after: float | None = None,
) -> ApplicationError:
    """Build the `ApplicationError` for `kind`.

    `retry_after` (seconds, e.g. from a 429 `Retry-After` header) becomes
    `next_retry_delay`, so Temporal waits as long as the provider asked.
    """
    return ApplicationError(
        message,
        *details,
        type=kind.value,
        non_retryable=kind in NON_RETRYABLE,
        next_retry_delay=timedelta(seconds=retry_after) if retry_after is not None else None,
    )
