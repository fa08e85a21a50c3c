"""Foundation schema: tenants, API keys, documents, chunks (pgvector + full text), ledger, budgets.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

EMBEDDING_DIM = 384  # all-MiniLM-L6-v2


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.execute(
        """
        CREATE TABLE tenants (
            id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            name        text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
            settings    jsonb NOT NULL DEFAULT '{}'::jsonb,
            created_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    # Keys are 256-bit random strings, so a plain SHA-256 is enough to make a leaked table useless
    # and still lets a request find its key by an indexed equality lookup.
    op.execute(
        """
        CREATE TABLE api_keys (
            id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            tenant_id          uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            name               text NOT NULL DEFAULT '',
            prefix             text NOT NULL,
            key_hash           text NOT NULL UNIQUE,
            tokens_per_minute  integer,
            tokens_per_day     integer,
            created_at         timestamptz NOT NULL DEFAULT now(),
            revoked_at         timestamptz
        )
        """
    )
    op.execute("CREATE INDEX api_keys_tenant ON api_keys (tenant_id)")
    op.execute(
        """
        CREATE TABLE documents (
            id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            tenant_id     uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            source        text NOT NULL,
            title         text NOT NULL DEFAULT '',
            metadata      jsonb NOT NULL DEFAULT '{}'::jsonb,
            content_hash  text NOT NULL,
            version       integer NOT NULL DEFAULT 1,
            created_at    timestamptz NOT NULL DEFAULT now(),
            updated_at    timestamptz NOT NULL DEFAULT now(),
            UNIQUE (tenant_id, source)
        )
        """
    )
    op.execute(
        f"""
        CREATE TABLE chunks (
            id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id    uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            document_id  uuid NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            position     integer NOT NULL,
            text         text NOT NULL,
            token_count  integer NOT NULL,
            embedding    vector({EMBEDDING_DIM}),
            tsv          tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
            metadata     jsonb NOT NULL DEFAULT '{{}}'::jsonb,
            created_at   timestamptz NOT NULL DEFAULT now(),
            UNIQUE (document_id, position)
        )
        """
    )
    op.execute("CREATE INDEX chunks_tenant ON chunks (tenant_id)")
    op.execute(
        "CREATE INDEX chunks_embedding_hnsw ON chunks USING hnsw (embedding vector_cosine_ops)"
    )
    op.execute("CREATE INDEX chunks_tsv_gin ON chunks USING gin (tsv)")
    op.execute("CREATE INDEX chunks_metadata_gin ON chunks USING gin (metadata jsonb_path_ops)")
    # all-MiniLM-L6-v2 reads 256 word pieces; a 512-token chunk is embedded as overlapping
    # windows, one row each, so search reaches every part of the chunk.
    op.execute(
        f"""
        CREATE TABLE chunk_windows (
            chunk_id      bigint NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
            window_index  integer NOT NULL,
            tenant_id     uuid NOT NULL,
            embedding     vector({EMBEDDING_DIM}) NOT NULL,
            PRIMARY KEY (chunk_id, window_index)
        )
        """
    )
    op.execute(
        "CREATE INDEX chunk_windows_embedding_hnsw ON chunk_windows "
        "USING hnsw (embedding vector_cosine_ops)"
    )
    op.execute("CREATE INDEX chunk_windows_tenant ON chunk_windows (tenant_id)")
    op.execute(
        """
        CREATE TABLE llm_calls (
            id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            call_key       text NOT NULL UNIQUE,
            created_at     timestamptz NOT NULL DEFAULT now(),
            tenant_id      uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            feature        text NOT NULL,
            workflow_id    text NOT NULL DEFAULT '',
            run_id         text NOT NULL DEFAULT '',
            provider       text NOT NULL,
            model          text NOT NULL,
            tokens_in      integer NOT NULL DEFAULT 0,
            tokens_out     integer NOT NULL DEFAULT 0,
            tokens_cached  integer NOT NULL DEFAULT 0,
            latency_ms     double precision NOT NULL DEFAULT 0,
            cost_usd       numeric(14, 8) NOT NULL DEFAULT 0,
            cache_layer    text NOT NULL DEFAULT 'none'
                           CHECK (cache_layer IN ('none', 'exact', 'semantic', 'provider')),
            status         text NOT NULL DEFAULT 'ok',
            error_type     text
        )
        """
    )
    op.execute("CREATE INDEX llm_calls_tenant_time ON llm_calls (tenant_id, created_at)")
    op.execute("CREATE INDEX llm_calls_workflow ON llm_calls (workflow_id)")
    op.execute(
        """
        CREATE TABLE budgets (
            tenant_id     uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            period        text NOT NULL DEFAULT 'month' CHECK (period IN ('month')),
            limit_usd     numeric(14, 4) NOT NULL CHECK (limit_usd >= 0),
            limit_tokens  bigint,
            soft_ratio    double precision NOT NULL DEFAULT 0.7
                          CHECK (soft_ratio > 0 AND soft_ratio <= 1),
            updated_at    timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, period)
        )
        """
    )


def downgrade() -> None:
    for table in (
        "budgets",
        "llm_calls",
        "chunk_windows",
        "chunks",
        "documents",
        "api_keys",
        "tenants",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table}")
    op.execute("DROP EXTENSION IF EXISTS vector")
