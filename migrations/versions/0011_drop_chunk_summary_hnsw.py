"""Drop the HNSW index on `chunks.embedding`: no query reads it.

Vector search walks `chunk_windows` (every 256-word-piece window of a chunk has its own
vector); a chunk's pooled `embedding` is kept as a summary but is never searched by
distance. The index cost every chunk insert a graph insertion (about 0.5 ms of PostgreSQL CPU
per chunk at 10,000 chunks) and ~1.7 KB of index per chunk, for nothing. The column stays.

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS chunks_embedding_hnsw")


def downgrade() -> None:
    op.execute(
        "CREATE INDEX IF NOT EXISTS chunks_embedding_hnsw ON chunks "
        "USING hnsw (embedding vector_cosine_ops)"
    )
