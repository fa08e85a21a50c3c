"""The ledger's relaxed write (cache hits and the API's direct calls): one statement, its own
transaction, committed before `record` returns, and its WAL setting gone with it."""

from __future__ import annotations

import uuid

from sqlalchemy import text

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
