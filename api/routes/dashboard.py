"""The cost dashboard: `GET /dashboard` (a static page) and `GET /v1/dashboard/data` (its numbers).

The page itself holds no data and needs no key; it asks for one, keeps it in the tab's
`sessionStorage` and sends it as a bearer token to the JSON route, so the tenant is decided
exactly as for every other `/v1` route and a key only ever sees its own tenant's spend. No
cookie is set, so no other site can make the browser fetch the numbers on its behalf.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sqlalchemy import text

from api.deps import ClientsDep, PrincipalDep, SettingsDep
from api.errors import ErrorResponse, not_found
from api.routes.costs import CostReport, CostRow, costs
from api.routes.runs import SERVED_BY_API
from keel.clients import Clients
from keel.contracts.guards import TenantBudgetStatus
from keel.runs import ui_url
from keel.settings import Settings

router = APIRouter(tags=["dashboard"])

STATIC = Path(__file__).resolve().parent.parent / "static"
# Everything the page loads, served from here: a CDN is unreachable on many networks.
ASSETS = {
    "chart.umd.js": "text/javascript",
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
}
# Scripts and styles only from this origin, data only from this origin's API, never framed:
# a feature name or model name that held markup could not run even if it were rendered as such.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
HIT_LAYERS = ("exact", "semantic", "provider")
COSTLIEST_RUNS = 10


class DaySeries(BaseModel):
    name: str = Field(description="A feature or a model.")
    usd: list[float] = Field(description="Spend on each day of `days`, in order.")


class LayerRate(BaseModel):
    layer: str
    hits: int = Field(description="Answered calls this layer served.")
    rate: float = Field(description="hits / answered calls, 0..1.")


class BudgetUse(BaseModel):
    days: list[date] = Field(description="This month (UTC) up to today.")
    spent_usd: list[float] = Field(description="Month-to-date spend at the end of each day.")
    limit_usd: float
    soft_ratio: float = Field(description="The alert line, as a fraction of the limit.")
    status: TenantBudgetStatus


class CostlyRun(BaseModel):
    id: str = Field(description="The workflow id (or the id of a call the API served).")
    feature: str
    models: list[str]
    calls: int
    cost_usd: float
    last_at: datetime
    ui_url: str | None = Field(description="The run in the Temporal UI; None: no workflow.")


class DashboardData(BaseModel):
    tenant: str
    days: list[date]
    total_usd: float
    answered: int = Field(description="Calls answered (ledger rows with status ok).")
    by_feature: list[DaySeries]
    by_model: list[DaySeries]
    cache: list[LayerRate]
    budget: BudgetUse | None = Field(description="None when the tenant has no monthly budget.")
    costliest_runs: list[CostlyRun]


@router.get("/dashboard", include_in_schema=False)
async def page() -> FileResponse:
    """The dashboard page (static: it fetches its numbers with the key it is given)."""
    return FileResponse(STATIC / "dashboard.html", media_type="text/html", headers=PAGE_HEADERS)


@router.get("/dashboard/assets/{name}", include_in_schema=False)
async def asset(name: str) -> FileResponse:
    """The page's script, styles and the vendored Chart.js; only the files listed."""
    if name not in ASSETS:  # never a path taken from the URL
        raise not_found("asset", name)
    return FileResponse(STATIC / name, media_type=ASSETS[name], headers=PAGE_HEADERS)


@router.get(
    "/v1/dashboard/data",
    response_model=DashboardData,
    responses={401: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)
async def data(
    principal: PrincipalDep,
    clients: ClientsDep,
    config: SettingsDep,
    days: Annotated[int, Query(ge=1, le=90, description="Days shown, ending today")] = 30,
) -> DashboardData:
    """The caller's tenant's spend for the dashboard: per day by feature and by model, the
    month against its budget, cache hit rates by layer, and the costliest recent runs."""
    end = datetime.now(UTC).date()
    window = [end - timedelta(days=n) for n in range(days - 1, -1, -1)]
    month = [end.replace(day=d) for d in range(1, end.day + 1)]
    # The same rows `GET /v1/costs` reports; from the month's start too, for the budget line.
    report = await costs(principal, clients, since=min(window[0], month[0]), until=end)
    rows = [r for r in report.rows if r.day >= window[0]]
    answered = sum(r.calls - r.errors for r in rows)
    hits = {
        layer: sum(r.calls - r.errors for r in rows if r.cache_layer == layer)
        for layer in HIT_LAYERS
    }
    return DashboardData(
        tenant=principal.tenant,
        days=window,
        total_usd=round(sum(r.cost_usd for r in rows), 8),
        answered=answered,
        by_feature=per_day(rows, window, "feature"),
        by_model=per_day(rows, window, "model"),
        cache=[
            LayerRate(layer=layer, hits=n, rate=n / answered if answered else 0.0)
            for layer, n in hits.items()
        ],
        budget=await budget_use(clients, principal.tenant_id, report, month),
        costliest_runs=await costliest_runs(clients, principal.tenant_id, window[0], config),
    )


def per_day(rows: list[CostRow], window: list[date], key: str) -> list[DaySeries]:
    """One series per feature (or model), costliest first, with a value for every day."""
    index = {day: i for i, day in enumerate(window)}
    series: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(window))
    for row in rows:
        if row.day in index:  # a day past `end` where the database's time zone is ahead of UTC
            series[getattr(row, key)][index[row.day]] += row.cost_usd
    ranked = sorted(series.items(), key=lambda item: -sum(item[1]))
    return [DaySeries(name=name, usd=[round(v, 8) for v in usd]) for name, usd in ranked]


async def budget_use(
    clients: Clients, tenant_id: uuid.UUID, report: CostReport, month: list[date]
) -> BudgetUse | None:
    """Month-to-date spend at the end of each day of this month, and the tenant's limit."""
    if report.month_budget is None:
        return None
    async with clients.engine.connect() as conn:
        soft_ratio = (
            await conn.execute(
                text("SELECT soft_ratio FROM budgets WHERE tenant_id = :t AND period = 'month'"),
                {"t": tenant_id},
            )
        ).scalar_one_or_none()
    daily = dict.fromkeys(month, 0.0)
    for row in report.rows:
        if row.day in daily:
            daily[row.day] += row.cost_usd
    spent = list(accumulate(daily.values()))
    return BudgetUse(
        days=month,
        spent_usd=[round(v, 8) for v in spent],
        limit_usd=report.month_budget.limit_usd,
        soft_ratio=soft_ratio if soft_ratio is not None else 0.7,
        status=report.month_budget,
    )


async def costliest_runs(
    clients: Clients, tenant_id: uuid.UUID, since: date, config: Settings
) -> list[CostlyRun]:
    """The runs that cost most since `since`, each linked to the Temporal UI when it has a
    workflow (a call the API served itself has none to show)."""
    async with clients.engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    """
                    SELECT workflow_id, min(feature) AS feature,
                           array_agg(DISTINCT model ORDER BY model) AS models,
                           count(*) AS calls, sum(cost_usd) AS cost_usd,
                           max(created_at) AS last_at
                    FROM llm_calls
                    WHERE tenant_id = :t AND created_at >= :since AND workflow_id <> ''
                    GROUP BY workflow_id
                    ORDER BY sum(cost_usd) DESC, max(created_at) DESC
                    LIMIT :n
                    """
                ),
                {"t": tenant_id, "since": since, "n": COSTLIEST_RUNS},
            )
        ).all()
    return [
        CostlyRun(
            id=r.workflow_id,
            feature=r.feature,
            models=list(r.models),
            calls=r.calls,
            cost_usd=float(r.cost_usd or 0),
            last_at=r.last_at,
            ui_url=None
            if r.workflow_id.startswith(SERVED_BY_API)
            else ui_url(config, r.workflow_id),
        )
        for r in rows
    ]
