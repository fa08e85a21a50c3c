"""The ledger's relaxed write (cache hits and the API's direct calls): one statement, its own
transaction, committed before `record` returns, and its WAL setting gone with it."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import text

from activities.gateway_steps import tenant_spend
from activities.ledger import LedgerRow, record
from keel.auth import ensure_tenant
from keel.contracts.gateway import CallContext
from keel.contracts.llm import Usage
from keel.db import make_engine
from keel.quickdb import QuickDb, plain_dsn
from keel.settings import Settings


async def test_a_relaxed_write_is_committed_once_and_leaves_the_connection_as_it_was(
    settings: Settings, tenant: str
) -> None:
    engine = make_engine(settings.database_dsn, pool_size=1)
    quick = QuickDb(plain_dsn(engine.url), size=1)  # one connection, reused
    try:
        tenant_id = await ensure_tenant(engine, tenant)
        row = LedgerRow(
            call_key=f"relaxed-{uuid.uuid4().hex}",
            context=CallContext(tenant=tenant, tenant_id=str(tenant_id), feature="ledger"),
            workflow_id="rag-hit-test",
            run_id="",
            provider="cache",
            model="m",
            usage=Usage(),
            latency_ms=1.0,
            cost_usd=0.0,
            cache_layer="exact",
        )
        assert await record(quick, row) is True
        assert await record(quick, row) is False  # the key is taken
        async with engine.connect() as conn:
            setting = (await conn.execute(text("SHOW synchronous_commit"))).scalar_one()
            rows = (
                await conn.execute(
                    text("SELECT count(*) FROM llm_calls WHERE call_key = :k"),
                    {"k": row.call_key},
                )
            ).scalar_one()
        assert rows == 1
        reused = await quick.fetchone("SHOW synchronous_commit", {})
        assert setting == "on"
        assert reused == ("on",)  # the reused connection keeps full durability for others
    finally:
        await quick.close()
        await engine.dispose()


async def test_the_monthly_spend_is_always_the_ledgers_own_sum(
    settings: Settings, tenant: str
) -> None:
    """The budget check reads a running total; it must equal summing the ledger, month by
    month, through concurrent inserts, a row dated last month and a deletion."""
    engine = make_engine(settings.database_dsn)
    quick = QuickDb(plain_dsn(engine.url))
    try:
        tenant_id = await ensure_tenant(engine, tenant)
        context = CallContext(tenant=tenant, tenant_id=str(tenant_id), feature="ledger")

        def row(n: int) -> LedgerRow:
            return LedgerRow(
                call_key=f"spend-{uuid.uuid4().hex}",
                context=context,
                workflow_id=f"w{n}",
                run_id="",
                provider="p",
                model="m",
                usage=Usage(input_tokens=10),
                latency_ms=1.0,
                cost_usd=0.00125 * (n + 1),
                cache_layer="none",
            )

        await asyncio.gather(*(record(quick if n % 2 else engine, row(n)) for n in range(24)))
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO llm_calls (call_key, tenant_id, feature, provider, model, "
                    "cost_usd, created_at) VALUES (:k, :t, 'ledger', 'p', 'm', 2.5, "
                    "date_trunc('month', now() AT TIME ZONE 'UTC') - interval '3 days')"
                ),
                {"k": f"old-{uuid.uuid4().hex}", "t": tenant_id},
            )
            await conn.execute(
                text("DELETE FROM llm_calls WHERE tenant_id = :t AND workflow_id = 'w0'"),
                {"t": tenant_id},
            )
            kept = (
                await conn.execute(
                    text(
                        "SELECT date_trunc('month', created_at AT TIME ZONE 'UTC')::date, "
                        "sum(cost_usd), count(*) FROM llm_calls WHERE tenant_id = :t "
                        "GROUP BY 1 ORDER BY 1"
                    ),
                    {"t": tenant_id},
                )
            ).all()
            totals = (
                await conn.execute(
                    text(
                        "SELECT month, cost_usd, calls FROM ledger_month_spend "
                        "WHERE tenant_id = :t AND calls > 0 ORDER BY month"
                    ),
                    {"t": tenant_id},
                )
            ).all()
        assert [tuple(r) for r in totals] == [tuple(r) for r in kept]
        assert len(totals) == 2  # last month's row counts in last month only
        spend = await tenant_spend(engine, str(tenant_id))
        assert spend.spent_usd == pytest.approx(sum(0.00125 * (n + 1) for n in range(1, 24)))
    finally:
        await quick.close()
        await engine.dispose()
