"""Ingestion staging: uploaded files, parsed documents and their chunks, per job.

A job's bytes and intermediate results live here, never in workflow history: activities pass
a job id and a range of file ids, and each stage reads what the previous one wrote. Rows are
deleted when the job ends (completed or cancelled); only the documents/chunks tables keep
what was ingested.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per file of a job: uploaded bytes, or a path under the server's ingest root
    # (read by the parse activity, so a large server-side folder is never copied twice).
    # `job_id` is the ingest workflow's id: uploads sent in several requests wait under it
    # until the job starts.
    op.execute(
        """
        CREATE TABLE ingest_files (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id   uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            job_id      text NOT NULL,
            name        text NOT NULL,
            data        bytea,
            path        text,
            size        bigint NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now(),
            CHECK ((data IS NULL) <> (path IS NULL)),
            UNIQUE (job_id, name)
        )
        """
    )
    op.execute("CREATE INDEX ingest_files_job ON ingest_files (job_id, id)")
    op.execute("CREATE INDEX ingest_files_created ON ingest_files (created_at)")
    # Documents found in the files (one per file, one per line of a JSON Lines file), or the
    # reason a file or line failed. `prior_hash` is the stored document's hash when the job
    # parsed it: it tells "unchanged before this job" from "stored by an earlier attempt".
    op.execute(
        """
        CREATE TABLE ingest_docs (
            id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            job_id          text NOT NULL,
            file_id         bigint NOT NULL REFERENCES ingest_files(id) ON DELETE CASCADE,
            source          text NOT NULL,
            title           text NOT NULL DEFAULT '',
            metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
            text            text,
            content_hash    text,
            prior_hash      text,
            status          text NOT NULL CHECK (status IN
                                ('parsed', 'chunked', 'unchanged', 'stored', 'failed')),
            chunk_count     integer NOT NULL DEFAULT 0,
            chunks_written  integer NOT NULL DEFAULT 0,
            error_kind      text,
            error           text,
            UNIQUE (job_id, source)
        )
        """
    )
    op.execute("CREATE INDEX ingest_docs_file ON ingest_docs (file_id)")
    # Chunks waiting to be embedded and stored; vectors are float32 bytes (384 x 4 per row).
    op.execute(
        """
        CREATE TABLE ingest_chunks (
            doc_id       bigint NOT NULL REFERENCES ingest_docs(id) ON DELETE CASCADE,
            position     integer NOT NULL,
            text         text NOT NULL,
            token_count  integer NOT NULL,
            char_start   integer NOT NULL,
            char_end     integer NOT NULL,
            embedding    bytea,
            windows      bytea,
            window_spans jsonb,
            PRIMARY KEY (doc_id, position)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS ingest_chunks")
    op.execute("DROP TABLE IF EXISTS ingest_docs")
    op.execute("DROP TABLE IF EXISTS ingest_files")
