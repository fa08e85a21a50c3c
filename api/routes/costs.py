"""`GET /v1/costs`: the ledger, aggregated by tenant, feature, model and day."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import text

from api.deps import ClientsDep, PrincipalDep
from api.errors import ApiError, ErrorResponse
from keel.contracts.guards import TenantBudgetStatus
from keel.guards.budget import tenant_budget_status

router = APIRouter(prefix="/v1/costs", tags=["costs"])


class CostRow(BaseModel):
    day: date
    feature: str
    model: str
    cache_layer: str
    calls: int
    errors: int
    tokens_in: int
    tokens_out: int
    tokens_cached: int
    cost_usd: float


class CostReport(BaseModel):
    tenant: str
    since: date
    until: date
    total_usd: float
    calls: int
    cache_hits: int
    rows: list[CostRow]
    month_budget: TenantBudgetStatus | None = None


@router.get(
    "",
    response_model=CostReport,
    responses={401: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)
async def costs(
    principal: PrincipalDep,
    clients: ClientsDep,
    since: Annotated[date | None, Query(description="First day (UTC), default 30 days ago")] = None,
    until: Annotated[date | None, Query(description="Last day (UTC), default today")] = None,
    feature: Annotated[str | None, Query(max_length=40)] = None,
    group_by: Annotated[Literal["day", "total"], Query()] = "day",
) -> CostReport:
    """The caller's spend: one row per day, feature, model and cache layer."""
    end = until or date.today()
    start = since or end - timedelta(days=30)
    if start > end:
        raise ApiError(422, "InvalidInput", f"since ({start}) is after until ({end})")
    if (end - start).days > 366:
        raise ApiError(422, "InvalidInput", "the range may span at most 366 days")
    day = "date_trunc('day', created_at)::date" if group_by == "day" else ":since"
    params: dict[str, Any] = {
        "t": principal.tenant_id,
        "since": start,
        "until": end + timedelta(days=1),
        "feature": feature,
    }
    async with clients.engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    f"""
                    SELECT {day} AS day, feature, model, cache_layer,
                           count(*) AS calls, count(*) FILTER (WHERE status <> 'ok') AS errors,
                           sum(tokens_in) AS tokens_in, sum(tokens_out) AS tokens_out,
                           sum(tokens_cached) AS tokens_cached, sum(cost_usd) AS cost_usd
                    FROM llm_calls
                    WHERE tenant_id = :t AND created_at >= :since AND created_at < :until
                      AND (CAST(:feature AS text) IS NULL OR feature = :feature)
                    GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
                    """  # noqa: S608 - `day` is one of two fixed expressions
                ),
                params,
            )
        ).all()
        budget = (
            await conn.execute(
                text(
                    """
                    SELECT b.limit_usd, b.soft_ratio, coalesce((SELECT cost_usd
                      FROM ledger_month_spend WHERE tenant_id = :t
                        AND month = date_trunc('month', now() AT TIME ZONE 'UTC')::date), 0)
                    FROM budgets b WHERE b.tenant_id = :t AND b.period = 'month'
                    """
                ),
                {"t": principal.tenant_id},
            )
        ).one_or_none()
    report_rows = [
        CostRow(
            day=r.day,
            feature=r.feature,
            model=r.model,
            cache_layer=r.cache_layer,
            calls=r.calls,
            errors=r.errors,
            tokens_in=r.tokens_in or 0,
            tokens_out=r.tokens_out or 0,
            tokens_cached=r.tokens_cached or 0,
            cost_usd=float(r.cost_usd or 0),
        )
        for r in rows
    ]
    status = None
    if budget is not None:
        status = tenant_budget_status(float(budget[2]), float(budget[0]), float(budget[1]))
    return CostReport(
        tenant=principal.tenant,
        since=start,
        until=end,
        total_usd=round(sum(r.cost_usd for r in report_rows), 8),
        calls=sum(r.calls for r in report_rows),
        cache_hits=sum(r.calls for r in report_rows if r.cache_layer in ("exact", "semantic")),
        rows=report_rows,
        month_budget=status,
    )
