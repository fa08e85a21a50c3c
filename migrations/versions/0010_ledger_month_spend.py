"""Each tenant's spend per calendar month (UTC), kept by the ledger's own inserts.

Every model call checks the tenant's monthly budget. Summing this month's ledger rows for it
grows with use: ~30 ms at 100,000 calls a month, more than the gateway's whole overhead
budget. A statement-level trigger on `llm_calls` adds each statement's rows to the month's
total in the same transaction, so the total is always exactly the ledger's sum (a crash
loses both or neither) and reading it is one primary-key lookup.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE ledger_month_spend (
            tenant_id  uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            month      date NOT NULL,
            cost_usd   numeric(18, 8) NOT NULL DEFAULT 0,
            calls      bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (tenant_id, month)
        )
        """
    )
    op.execute(
        """
        CREATE FUNCTION ledger_month_spend_apply() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                INSERT INTO ledger_month_spend AS s (tenant_id, month, cost_usd, calls)
                SELECT tenant_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date,
                       sum(cost_usd), count(*)
                FROM added_calls GROUP BY 1, 2 ORDER BY 1, 2
                ON CONFLICT (tenant_id, month) DO UPDATE
                SET cost_usd = s.cost_usd + excluded.cost_usd, calls = s.calls + excluded.calls;
            ELSE
                UPDATE ledger_month_spend s
                SET cost_usd = s.cost_usd - gone.cost_usd, calls = s.calls - gone.calls
                FROM (SELECT tenant_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date
                             AS month, sum(cost_usd) AS cost_usd, count(*) AS calls
                      FROM removed_calls GROUP BY 1, 2) gone
                WHERE s.tenant_id = gone.tenant_id AND s.month = gone.month;
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER llm_calls_month_spend_insert AFTER INSERT ON llm_calls "
        "REFERENCING NEW TABLE AS added_calls FOR EACH STATEMENT "
        "EXECUTE FUNCTION ledger_month_spend_apply()"
    )
    op.execute(
        "CREATE TRIGGER llm_calls_month_spend_delete AFTER DELETE ON llm_calls "
        "REFERENCING OLD TABLE AS removed_calls FOR EACH STATEMENT "
        "EXECUTE FUNCTION ledger_month_spend_apply()"
    )
    op.execute(
        "INSERT INTO ledger_month_spend (tenant_id, month, cost_usd, calls) "
        "SELECT tenant_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date, "
        "sum(cost_usd), count(*) FROM llm_calls GROUP BY 1, 2"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS llm_calls_month_spend_insert ON llm_calls")
    op.execute("DROP TRIGGER IF EXISTS llm_calls_month_spend_delete ON llm_calls")
    op.execute("DROP TABLE IF EXISTS ledger_month_spend")
    op.execute("DROP FUNCTION IF EXISTS ledger_month_spend_apply()")
