"""Keel's schema, in one place: every table as SQLAlchemy Core, the `target_metadata` of the
Alembic migrations in `migrations/`.

The migrations create the schema (with the triggers and functions that keep BM25 statistics
and corpus generations exact, which SQLAlchemy does not model); this module states what they
create, and `tests/test_migrations.py` fails when the two disagree (Alembic's autogenerate
comparison after upgrading to head). Queries that are easier to read as SQL stay SQL; code
that builds statements uses these tables.
"""

from __future__ import annotations

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    REAL,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    Date,
    DateTime,
    Double,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR

EMBEDDING_DIM = 384
# The values the check constraints allow, for code that writes or filters on them.
LEDGER_CACHE_LAYERS = ("none", "exact", "semantic", "provider")
INGEST_DOC_STATUSES = ("parsed", "chunked", "unchanged", "stored", "failed")
TRANSCRIPT_KINDS = ("llm", "tool", "human", "system")
INVALIDATION_REASONS = ("changed", "deleted")


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


metadata = MetaData()


bm25_postings = Table(
    "bm25_postings",
    metadata,
    Column("term_id", BigInteger, primary_key=True),
    Column("chunk_id", BigInteger, primary_key=True),
    Column("tf", SmallInteger, nullable=False),
    Column("dl", Integer, nullable=False),
    Column("impact", REAL, nullable=False),
    PrimaryKeyConstraint("term_id", "chunk_id", name="bm25_postings_pkey"),
)
# Postings of a term, highest impact first: what the threshold algorithm reads.
Index(
    "bm25_postings_impact",
    bm25_postings.c.term_id,
    bm25_postings.c.impact.desc(),
    bm25_postings.c.chunk_id,
    postgresql_include=["tf", "dl"],
)

tenants = Table(
    "tenants",
    metadata,
    Column("id", Uuid, primary_key=True, server_default=text("gen_random_uuid()")),
    Column("name", Text, nullable=False),
    Column("settings", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("created_at", DateTime(True), nullable=False, server_default=text("now()")),
    CheckConstraint("name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'::text", name="tenants_name_check"),
    PrimaryKeyConstraint("id", name="tenants_pkey"),
    UniqueConstraint("name", name="tenants_name_key"),
)

agent_document_results = Table(
    "agent_document_results",
    metadata,
    Column("job_id", Text, primary_key=True),
    Column("document_id", Uuid, primary_key=True),
    Column("tenant_id", Uuid, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("result", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("error", Text, nullable=False, server_default=text("''::text")),
    Column("cost_usd", Numeric(14, 8), nullable=False, server_default=text("0")),
    Column("created_at", DateTime(True), nullable=False, server_default=text("now()")),
    ForeignKeyConstraint(
        ["tenant_id"],
        ["tenants.id"],
        ondelete="CASCADE",
        name="agent_document_results_tenant_id_fkey",
    ),
    PrimaryKeyConstraint("job_id", "document_id", name="agent_document_results_pkey"),
    Index("agent_document_results_tenant", "tenant_id"),
)

agent_transcripts = Table(
    "agent_transcripts",
    metadata,
    Column("transcript_id", Text, primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("tenant_id", Uuid, nullable=False),
    Column("run_id", Text, nullable=False, server_default=text("''::text")),
    Column("round", Integer, nullable=False, server_default=text("0")),
    Column("turn", Integer, nullable=False, server_default=text("0")),
    Column("role", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("content", Text, nullable=False),
    Column("data", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("created_at", DateTime(True), nullable=False, server_default=text("now()")),
    CheckConstraint(
        f"kind IN ({_quoted(TRANSCRIPT_KINDS)})",
        name="agent_transcripts_kind_check",
    ),
    ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], ondelete="CASCADE", name="agent_transcripts_tenant_id_fkey"
    ),
    PrimaryKeyConstraint("transcript_id", "seq", name="agent_transcripts_pkey"),
    Index("agent_transcripts_tenant", "tenant_id", "created_at"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Uuid, primary_key=True, server_default=text("gen_random_uuid()")),
    Column("tenant_id", Uuid, nullable=False),
    Column("name", Text, nullable=False, server_default=text("''::text")),
    Column("prefix", Text, nullable=False),
    Column("key_hash", Text, nullable=False),
    Column("tokens_per_minute", Integer),
    Column("tokens_per_day", Integer),
    Column("created_at", DateTime(True), nullable=False, server_default=text("now()")),
    Column("revoked_at", DateTime(True)),
    ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], ondelete="CASCADE", name="api_keys_tenant_id_fkey"
    ),
    PrimaryKeyConstraint("id", name="api_keys_pkey"),
    UniqueConstraint("key_hash", name="api_keys_key_hash_key"),
    Index("api_keys_tenant", "tenant_id"),
)

bm25_tenants = Table(
    "bm25_tenants",
    metadata,
    Column("tenant_id", Uuid, primary_key=True),
    Column("chunk_count", BigInteger, nullable=False, server_default=text("0")),
    Column("length_total", BigInteger, nullable=False, server_default=text("0")),
    Column("version", BigInteger, nullable=False, server_default=text("0")),
    CheckConstraint("chunk_count >= 0", name="bm25_tenants_chunk_count_check"),
    CheckConstraint("length_total >= 0", name="bm25_tenants_length_total_check"),
    ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], ondelete="CASCADE", name="bm25_tenants_tenant_id_fkey"
    ),
    PrimaryKeyConstraint("tenant_id", name="bm25_tenants_pkey"),
)

bm25_terms = Table(
    "bm25_terms",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True, autoincrement=True),
    Column("tenant_id", Uuid, nullable=False),
    Column("lexeme", Text, nullable=False),
    Column("df", Integer, nullable=False),
    CheckConstraint("df >= 0", name="bm25_terms_df_check"),
    ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], ondelete="CASCADE", name="bm25_terms_tenant_id_fkey"
    ),
    PrimaryKeyConstraint("id", name="bm25_terms_pkey"),
    UniqueConstraint("tenant_id", "lexeme", name="bm25_terms_tenant_id_lexeme_key"),
)

budgets = Table(
    "budgets",
    metadata,
    Column("tenant_id", Uuid, primary_key=True),
    Column("period", Text, primary_key=True, server_default=text("'month'::text")),
    Column("limit_usd", Numeric(14, 4), nullable=False),
    Column("limit_tokens", BigInteger),
    Column("soft_ratio", Double(53), nullable=False, server_default=text("0.7")),
    Column("updated_at", DateTime(True), nullable=False, server_default=text("now()")),
    CheckConstraint("limit_usd >= 0::numeric", name="budgets_limit_usd_check"),
    CheckConstraint("period = 'month'::text", name="budgets_period_check"),
    CheckConstraint(
        "soft_ratio > 0::double precision AND soft_ratio <= 1::double precision",
        name="budgets_soft_ratio_check",
    ),
    ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], ondelete="CASCADE", name="budgets_tenant_id_fkey"
    ),
    PrimaryKeyConstraint("tenant_id", "period", name="budgets_pkey"),
)

cache_invalidations = Table(
    "cache_invalidations",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True, autoincrement=True),
    Column("tenant_id", Uuid, nullable=False),
    Column("document_id", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", DateTime(True), nullable=False, server_default=text("now()")),
    Column("processed_at", DateTime(True)),
    CheckConstraint(
        f"reason IN ({_quoted(INVALIDATION_REASONS)})",
        name="cache_invalidations_reason_check",
    ),
    ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], ondelete="CASCADE", name="cache_invalidations_tenant_id_fkey"
    ),
    PrimaryKeyConstraint("id", name="cache_invalidations_pkey"),
    Index("cache_invalidations_pending", "created_at", postgresql_where="(processed_at IS NULL)"),
)

corpus_generations = Table(
    "corpus_generations",
    metadata,
    Column("tenant_id", Uuid, primary_key=True),
    Column("generation", BigInteger, nullable=False, server_default=text("0")),
    ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], ondelete="CASCADE", name="corpus_generations_tenant_id_fkey"
    ),
    PrimaryKeyConstraint("tenant_id", name="corpus_generations_pkey"),
)

documents = Table(
    "documents",
    metadata,
    Column("id", Uuid, primary_key=True, server_default=text("gen_random_uuid()")),
    Column("tenant_id", Uuid, nullable=False),
    Column("source", Text, nullable=False),
    Column("title", Text, nullable=False, server_default=text("''::text")),
    Column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("content_hash", Text, nullable=False),
    Column("version", Integer, nullable=False, server_default=text("1")),
    Column("created_at", DateTime(True), nullable=False, server_default=text("now()")),
    Column("updated_at", DateTime(True), nullable=False, server_default=text("now()")),
    ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], ondelete="CASCADE", name="documents_tenant_id_fkey"
    ),
    PrimaryKeyConstraint("id", name="documents_pkey"),
    UniqueConstraint("tenant_id", "source", name="documents_tenant_id_source_key"),
)

ingest_files = Table(
    "ingest_files",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True, autoincrement=True),
    Column("tenant_id", Uuid, nullable=False),
    Column("job_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("data", LargeBinary),
    Column("path", Text),
    Column("size", BigInteger, nullable=False),
    Column("created_at", DateTime(True), nullable=False, server_default=text("now()")),
    CheckConstraint("(data IS NULL) <> (path IS NULL)", name="ingest_files_check"),
    ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], ondelete="CASCADE", name="ingest_files_tenant_id_fkey"
    ),
    PrimaryKeyConstraint("id", name="ingest_files_pkey"),
    UniqueConstraint("job_id", "name", name="ingest_files_job_id_name_key"),
    Index("ingest_files_created", "created_at"),
    Index("ingest_files_job", "job_id", "id"),
)

llm_calls = Table(
    "llm_calls",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True, autoincrement=True),
    Column("call_key", Text, nullable=False),
    Column("created_at", DateTime(True), nullable=False, server_default=text("now()")),
    Column("tenant_id", Uuid, nullable=False),
    Column("feature", Text, nullable=False),
    Column("workflow_id", Text, nullable=False, server_default=text("''::text")),
    Column("run_id", Text, nullable=False, server_default=text("''::text")),
    Column("provider", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("tokens_in", Integer, nullable=False, server_default=text("0")),
    Column("tokens_out", Integer, nullable=False, server_default=text("0")),
    Column("tokens_cached", Integer, nullable=False, server_default=text("0")),
    Column("latency_ms", Double(53), nullable=False, server_default=text("0")),
    Column("cost_usd", Numeric(14, 8), nullable=False, server_default=text("0")),
    Column("cache_layer", Text, nullable=False, server_default=text("'none'::text")),
    Column("status", Text, nullable=False, server_default=text("'ok'::text")),
    Column("error_type", Text),
    Column("cache_key", Text),
    Column("cache_entry", Text),
    CheckConstraint(
        f"cache_layer IN ({_quoted(LEDGER_CACHE_LAYERS)})",
        name="llm_calls_cache_layer_check",
    ),
    ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], ondelete="CASCADE", name="llm_calls_tenant_id_fkey"
    ),
    PrimaryKeyConstraint("id", name="llm_calls_pkey"),
    UniqueConstraint("call_key", name="llm_calls_call_key_key"),
    Index("llm_calls_tenant_time", "tenant_id", "created_at"),
    Index("llm_calls_workflow", "workflow_id"),
)

# Spend per tenant and calendar month (UTC), kept by statement-level triggers on
# `llm_calls` in the inserting transaction (migration 0010): the budget check's one read.
ledger_month_spend = Table(
    "ledger_month_spend",
    metadata,
    Column("tenant_id", Uuid, nullable=False),
    Column("month", Date, nullable=False),
    Column("cost_usd", Numeric(18, 8), nullable=False, server_default=text("0")),
    Column("calls", BigInteger, nullable=False, server_default=text("0")),
    ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], ondelete="CASCADE", name="ledger_month_spend_tenant_id_fkey"
    ),
    PrimaryKeyConstraint("tenant_id", "month", name="ledger_month_spend_pkey"),
)

semantic_cache = Table(
    "semantic_cache",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True, autoincrement=True),
    Column("tenant_id", Uuid, nullable=False),
    Column("model_scope", Text, nullable=False),
    Column("system_hash", Text, nullable=False),
    Column("query_text", Text, nullable=False),
    Column("embedding", Vector(EMBEDDING_DIM), nullable=False),
    Column("response", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column(
        "cited_document_ids", ARRAY(Text()), nullable=False, server_default=text("'{}'::text[]")
    ),
    Column("created_at", DateTime(True), nullable=False, server_default=text("now()")),
    Column("expires_at", DateTime(True), nullable=False),
    ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], ondelete="CASCADE", name="semantic_cache_tenant_id_fkey"
    ),
    PrimaryKeyConstraint("id", name="semantic_cache_pkey"),
    Index("semantic_cache_cited", "cited_document_ids", postgresql_using="gin"),
    Index(
        "semantic_cache_embedding_hnsw",
        "embedding",
        postgresql_ops={"embedding": "vector_cosine_ops"},
        postgresql_using="hnsw",
    ),
    Index("semantic_cache_scope", "tenant_id", "model_scope", "system_hash"),
)

chunks = Table(
    "chunks",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True, autoincrement=True),
    Column("tenant_id", Uuid, nullable=False),
    Column("document_id", Uuid, nullable=False),
    Column("position", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("token_count", Integer, nullable=False),
    Column("embedding", Vector(EMBEDDING_DIM)),
    Column("tsv", TSVECTOR, Computed("to_tsvector('english'::regconfig, text)", persisted=True)),
    Column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("created_at", DateTime(True), nullable=False, server_default=text("now()")),
    ForeignKeyConstraint(
        ["document_id"], ["documents.id"], ondelete="CASCADE", name="chunks_document_id_fkey"
    ),
    ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], ondelete="CASCADE", name="chunks_tenant_id_fkey"
    ),
    PrimaryKeyConstraint("id", name="chunks_pkey"),
    UniqueConstraint("document_id", "position", name="chunks_document_id_position_key"),
    Index("chunks_date", "tenant_id", text("left(metadata->>'date', 10)")),
    Index("chunks_department", "tenant_id", text("lower(metadata->>'department')")),
    Index("chunks_doc_type", "tenant_id", text("lower(metadata->>'doc_type')")),
    Index(
        "chunks_metadata_gin",
        "metadata",
        postgresql_ops={"metadata": "jsonb_path_ops"},
        postgresql_using="gin",
    ),
    Index("chunks_tenant", "tenant_id"),
    Index("chunks_tsv_gin", "tsv", postgresql_using="gin"),
)

ingest_docs = Table(
    "ingest_docs",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True, autoincrement=True),
    Column("job_id", Text, nullable=False),
    Column("file_id", BigInteger, nullable=False),
    Column("source", Text, nullable=False),
    Column("title", Text, nullable=False, server_default=text("''::text")),
    Column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("text", Text),
    Column("content_hash", Text),
    Column("prior_hash", Text),
    Column("status", Text, nullable=False),
    Column("chunk_count", Integer, nullable=False, server_default=text("0")),
    Column("chunks_written", Integer, nullable=False, server_default=text("0")),
    Column("error_kind", Text),
    Column("error", Text),
    CheckConstraint(
        f"status IN ({_quoted(INGEST_DOC_STATUSES)})",
        name="ingest_docs_status_check",
    ),
    ForeignKeyConstraint(
        ["file_id"], ["ingest_files.id"], ondelete="CASCADE", name="ingest_docs_file_id_fkey"
    ),
    PrimaryKeyConstraint("id", name="ingest_docs_pkey"),
    UniqueConstraint("job_id", "source", name="ingest_docs_job_id_source_key"),
    Index("ingest_docs_file", "file_id"),
)

chunk_screening = Table(
    "chunk_screening",
    metadata,
    Column("chunk_id", BigInteger, primary_key=True),
    Column("rules", Text, nullable=False),
    Column("blocked", Boolean, nullable=False),
    Column("cleaned", Text),
    ForeignKeyConstraint(
        ["chunk_id"], ["chunks.id"], ondelete="CASCADE", name="chunk_screening_chunk_id_fkey"
    ),
    PrimaryKeyConstraint("chunk_id", name="chunk_screening_pkey"),
)

chunk_windows = Table(
    "chunk_windows",
    metadata,
    Column("chunk_id", BigInteger, primary_key=True),
    Column("window_index", Integer, primary_key=True),
    Column("tenant_id", Uuid, nullable=False),
    Column("embedding", Vector(EMBEDDING_DIM), nullable=False),
    ForeignKeyConstraint(
        ["chunk_id"], ["chunks.id"], ondelete="CASCADE", name="chunk_windows_chunk_id_fkey"
    ),
    PrimaryKeyConstraint("chunk_id", "window_index", name="chunk_windows_pkey"),
    Index(
        "chunk_windows_embedding_hnsw",
        "embedding",
        postgresql_ops={"embedding": "vector_cosine_ops"},
        postgresql_using="hnsw",
    ),
    Index("chunk_windows_tenant", "tenant_id"),
)

ingest_chunks = Table(
    "ingest_chunks",
    metadata,
    Column("doc_id", BigInteger, primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("text", Text, nullable=False),
    Column("token_count", Integer, nullable=False),
    Column("char_start", Integer, nullable=False),
    Column("char_end", Integer, nullable=False),
    Column("embedding", Vector(EMBEDDING_DIM)),
    Column("windows", Vector()),  # the chunk's window vectors end to end
    Column("window_spans", JSONB),
    Column("section", Text),
    ForeignKeyConstraint(
        ["doc_id"], ["ingest_docs.id"], ondelete="CASCADE", name="ingest_chunks_doc_id_fkey"
    ),
    PrimaryKeyConstraint("doc_id", "position", name="ingest_chunks_pkey"),
)
