"""A per-tenant corpus generation bumped with every document write, and cache-hit provenance.

The answer cache keys on the tenant's corpus generation, so a new document can turn yesterday's
"not enough information" into an answer. Counting the tenant's documents for it took 3 ms at
3,000 documents, more than the whole budget of a cache hit; a counter that a statement-level
trigger on `documents` bumps in the writing transaction is one primary-key read.

`llm_calls.cache_key` / `cache_entry` say which cache entry (its key and the id it was stored
under) answered a hit, so a hit served by the API without a workflow still says what it served.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE corpus_generations (
            tenant_id   uuid PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
            generation  bigint NOT NULL DEFAULT 0
        )
        """
    )
    op.execute(
        """
        CREATE FUNCTION corpus_generation_bump() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP IN ('INSERT', 'UPDATE') THEN
                INSERT INTO corpus_generations AS g (tenant_id, generation)
                SELECT DISTINCT tenant_id, 1 FROM new_documents ORDER BY tenant_id
                ON CONFLICT (tenant_id) DO UPDATE SET generation = g.generation + 1;
            ELSE
                UPDATE corpus_generations g SET generation = g.generation + 1
                WHERE g.tenant_id IN (SELECT tenant_id FROM old_documents);
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    for event, ref in (
        ("INSERT", "NEW TABLE AS new_documents"),
        ("UPDATE", "NEW TABLE AS new_documents"),
        ("DELETE", "OLD TABLE AS old_documents"),
    ):
        op.execute(
            f"CREATE TRIGGER documents_generation_{event.lower()} AFTER {event} ON documents "
            f"REFERENCING {ref} FOR EACH STATEMENT EXECUTE FUNCTION corpus_generation_bump()"
        )
    op.execute(
        "INSERT INTO corpus_generations (tenant_id, generation) "
        "SELECT tenant_id, count(*) + coalesce(sum(version), 0) FROM documents GROUP BY tenant_id"
    )
    op.execute("ALTER TABLE llm_calls ADD COLUMN cache_key text, ADD COLUMN cache_entry text")


def downgrade() -> None:
    op.execute("ALTER TABLE llm_calls DROP COLUMN IF EXISTS cache_key")
    op.execute("ALTER TABLE llm_calls DROP COLUMN IF EXISTS cache_entry")
    for event in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS documents_generation_{event} ON documents")
    op.execute("DROP TABLE IF EXISTS corpus_generations")
    op.execute("DROP FUNCTION IF EXISTS corpus_generation_bump()")
