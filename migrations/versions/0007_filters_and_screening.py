"""Expression indexes for metadata filters, and stored screening verdicts of chunks.

Vector search counts how many chunks a filter passes to choose between the HNSW walk and an
exact scan; these indexes match the filter expressions of `activities.rag.search.filter_sql`
so that count reads an index instead of every chunk's metadata.

`chunk_screening` keeps the indirect-injection verdict of each chunk under the version of the
rules that produced it: the check costs ~17 ms per 512-token chunk, and context assembly used
to run it on every source of every query. Chunk rows are never edited in place by Keel (a
changed document gets new chunks), and the cascade drops a verdict with its chunk.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX chunks_department ON chunks (tenant_id, lower(metadata->>'department'))"
    )
    op.execute("CREATE INDEX chunks_doc_type ON chunks (tenant_id, lower(metadata->>'doc_type'))")
    op.execute("CREATE INDEX chunks_date ON chunks (tenant_id, left(metadata->>'date', 10))")
    op.execute(
        """
        CREATE TABLE chunk_screening (
            chunk_id  bigint PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,
            rules     text NOT NULL,
            blocked   boolean NOT NULL
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS chunk_screening")
    for name in ("chunks_department", "chunks_doc_type", "chunks_date"):
        op.execute(f"DROP INDEX IF EXISTS {name}")
