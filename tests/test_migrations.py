"""Migrations go up and down on a real PostgreSQL with pgvector."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from keel.db import downgrade, migrate
from keel.settings import Settings

TABLES = {"tenants", "api_keys", "documents", "chunks", "chunk_windows", "llm_calls", "budgets"}


@pytest.fixture
def scratch_db(base_settings: Settings) -> Iterator[str]:
    name = f"mig_{uuid.uuid4().hex[:8]}"
    admin = {
        "host": base_settings.host,
        "port": base_settings.ports.postgres,
        "user": "postgres",
        "dbname": "postgres",
        "autocommit": True,
    }
    with psycopg.connect(**admin) as conn:  # type: ignore[arg-type]
        conn.execute(f"create database {name}")
    yield f"postgresql+psycopg://postgres@{base_settings.host}:{base_settings.ports.postgres}/{name}"
    with psycopg.connect(**admin) as conn:  # type: ignore[arg-type]
        conn.execute(f"drop database {name} with (force)")


def _tables(dsn: str) -> set[str]:
    with psycopg.connect(dsn.replace("+psycopg", "")) as conn:
        rows = conn.execute(
            "select tablename from pg_tables where schemaname = 'public'"
        ).fetchall()
    return {r[0] for r in rows} - {"alembic_version"}


def _indexes(dsn: str) -> dict[str, str]:
    with psycopg.connect(dsn.replace("+psycopg", "")) as conn:
        rows = conn.execute(
            "select indexname, indexdef from pg_indexes where schemaname = 'public'"
        ).fetchall()
    return {r[0]: r[1] for r in rows}


def test_upgrade_creates_schema_and_downgrade_removes_it(scratch_db: str) -> None:
    migrate(scratch_db)
    assert _tables(scratch_db) >= TABLES
    indexes = _indexes(scratch_db)
    assert "USING hnsw (embedding vector_cosine_ops)" in indexes["chunk_windows_embedding_hnsw"]
    assert "chunks_embedding_hnsw" not in indexes  # 0011: nothing searched the pooled vector
    assert "USING gin (tsv)" in indexes["chunks_tsv_gin"]

    downgrade(scratch_db, "base")
    assert _tables(scratch_db) == set()
    with psycopg.connect(scratch_db.replace("+psycopg", "")) as conn:
        assert (
            conn.execute("select 1 from pg_extension where extname = 'vector'").fetchone() is None
        )

    migrate(scratch_db)  # and back up again: downgrade left nothing behind that blocks it
    assert _tables(scratch_db) >= TABLES


def test_chunk_full_text_column_is_generated(scratch_db: str) -> None:
    migrate(scratch_db)
    with psycopg.connect(scratch_db.replace("+psycopg", "")) as conn:
        tenant = conn.execute("insert into tenants (name) values ('acme') returning id").fetchone()
        assert tenant is not None
        doc = conn.execute(
            "insert into documents (tenant_id, source, content_hash) values (%s, 'a.md', 'h') "
            "returning id",
            (tenant[0],),
        ).fetchone()
        assert doc is not None
        conn.execute(
            "insert into chunks (tenant_id, document_id, position, text, token_count) "
            "values (%s, %s, 0, 'Refunds are processed within fourteen days', 7)",
            (tenant[0], doc[0]),
        )
        hit = conn.execute(
            "select count(*) from chunks where tsv @@ plainto_tsquery('english', 'refund process')"
        ).fetchone()
    assert hit == (1,)


def test_migrations_produce_exactly_the_schema_module(scratch_db: str) -> None:
    """`keel.schema` is the one statement of the schema: after upgrading to head, Alembic's
    autogenerate finds nothing to add, drop or alter between it and the database."""
    import warnings

    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    from keel.schema import metadata

    migrate(scratch_db)
    engine = create_engine(scratch_db)
    try:
        with engine.connect() as conn, warnings.catch_warnings():
            # Expression indexes cannot be compared by autogenerate; it says so and skips them.
            warnings.filterwarnings("ignore", message=".*expression-based index.*")
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    assert diff == [], f"migrations and keel/schema.py disagree: {diff}"
    assert {t.name for t in metadata.sorted_tables} == _tables(scratch_db)


def test_staged_vectors_survive_the_change_to_pgvector_and_back(scratch_db: str) -> None:
    """0012 turns staged float32 bytes into pgvector values without losing a job in flight."""
    import numpy as np

    rng = np.random.default_rng(3)
    pooled = rng.standard_normal(384).astype("<f4")
    windows = rng.standard_normal(3 * 384).astype("<f4")
    plain = scratch_db.replace("+psycopg", "")
    migrate(scratch_db, "0011")
    with psycopg.connect(plain) as conn:
        tenant = conn.execute("insert into tenants (name) values ('m') returning id").fetchone()
        assert tenant is not None
        file_id = conn.execute(
            "insert into ingest_files (tenant_id, job_id, name, data, size) "
            "values (%s, 'j', 'a.txt', 'x', 1) returning id",
            (tenant[0],),
        ).fetchone()[0]  # type: ignore[index]
        doc_id = conn.execute(
            "insert into ingest_docs (job_id, file_id, source, status) "
            "values ('j', %s, 'a.txt', 'chunked') returning id",
            (file_id,),
        ).fetchone()[0]  # type: ignore[index]
        conn.execute(
            "insert into ingest_chunks (doc_id, position, text, token_count, char_start, "
            "char_end, embedding, windows) values (%s, 0, 'x', 1, 0, 1, %s, %s)",
            (doc_id, pooled.tobytes(), windows.tobytes()),
        )

    migrate(scratch_db)
    with psycopg.connect(plain) as conn:
        row = conn.execute(
            "select embedding::text, windows::text, vector_dims(windows) from ingest_chunks"
        ).fetchone()
    assert row is not None and row[2] == 3 * 384
    assert np.array_equal(np.array(row[0].strip("[]").split(","), dtype="<f4"), pooled)
    assert np.array_equal(np.array(row[1].strip("[]").split(","), dtype="<f4"), windows)

    downgrade(scratch_db, "0011")
    with psycopg.connect(plain) as conn:
        back = conn.execute("select embedding, windows from ingest_chunks").fetchone()
    assert back is not None
    assert bytes(back[0]) == pooled.tobytes() and bytes(back[1]) == windows.tobytes()
