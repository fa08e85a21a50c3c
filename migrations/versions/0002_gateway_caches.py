"""Gateway: semantic cache (pgvector) and cache invalidation events for changed sources.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE semantic_cache (
            id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id           uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            model_scope         text NOT NULL,
            system_hash         text NOT NULL,
            query_text          text NOT NULL,
            embedding           vector(384) NOT NULL,
            response            text NOT NULL,
            model               text NOT NULL,
            cited_document_ids  text[] NOT NULL DEFAULT '{}',
            created_at          timestamptz NOT NULL DEFAULT now(),
            expires_at          timestamptz NOT NULL
        )
        """
    )
    op.execute(
        "CREATE INDEX semantic_cache_embedding_hnsw ON semantic_cache "
        "USING hnsw (embedding vector_cosine_ops)"
    )
    op.execute(
        "CREATE INDEX semantic_cache_scope ON semantic_cache (tenant_id, model_scope, system_hash)"
    )
    op.execute("CREATE INDEX semantic_cache_cited ON semantic_cache USING gin (cited_document_ids)")
    # One row per document change; the gateway drops cached answers that cited the document
    # and marks the event processed, so an invalidation is never lost to a crash in between.
    op.execute(
        """
        CREATE TABLE cache_invalidations (
            id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id     uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            document_id   text NOT NULL,
            reason        text NOT NULL CHECK (reason IN ('changed', 'deleted')),
            created_at    timestamptz NOT NULL DEFAULT now(),
            processed_at  timestamptz
        )
        """
    )
    op.execute(
        "CREATE INDEX cache_invalidations_pending ON cache_invalidations (created_at) "
        "WHERE processed_at IS NULL"
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS cache_invalidations")
    op.execute("DROP TABLE IF EXISTS semantic_cache")
