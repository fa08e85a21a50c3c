"""Small helpers shared by workflows: run status in search attributes."""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    SearchAttributeUpdate,
    TypedSearchAttributes,
)
from temporalio.exceptions import ActivityError, ApplicationError

TENANT = SearchAttributeKey.for_keyword("KeelTenant")
FEATURE = SearchAttributeKey.for_keyword("KeelFeature")
STATUS = SearchAttributeKey.for_keyword("KeelStatus")
COST_USD = SearchAttributeKey.for_float("KeelCostUsd")


def publish_status(status: str, *, cost_usd: float | None = None) -> None:
    """Record the run's status (and spend so far) where the Temporal UI can filter on it."""
    updates: list[SearchAttributeUpdate[Any]] = [STATUS.value_set(status)]
    if cost_usd is not None:
        updates.append(COST_USD.value_set(cost_usd))
    workflow.upsert_search_attributes(updates)


def run_attributes(tenant: str, feature: str) -> TypedSearchAttributes:
    """Search attributes a run starts with: who owns it and what it is for."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(TENANT, tenant),
            SearchAttributePair(FEATURE, feature),
            SearchAttributePair(STATUS, "running"),
        ]
    )


# What a failed local activity raises in workflow code: an `ActivityError`, or (as seen with
# temporalio 1.35 for a non-retryable failure) the activity's `ApplicationError` itself.
LOCAL_ACTIVITY_FAILURES = (ActivityError, ApplicationError)
