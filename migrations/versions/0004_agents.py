"""Agents: run transcripts, document-job results, and the read-only document-metadata view.

Revision ID: 0004
Revises: 0003

The brief numbered this migration after 0002; 0003 (ingestion staging) landed in the same
tree meanwhile, and two migrations revising 0002 would leave Alembic with two heads, so this
one revises 0003.
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The full text of every turn of an agent run, in order; the run's history keeps only
    # summaries and this transcript's id (the workflow id, stable across continue-as-new).
    op.execute(
        """
        CREATE TABLE agent_transcripts (
            transcript_id  text NOT NULL,
            seq            integer NOT NULL,
            tenant_id      uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            run_id         text NOT NULL DEFAULT '',
            round          integer NOT NULL DEFAULT 0,
            turn           integer NOT NULL DEFAULT 0,
            role           text NOT NULL,
            kind           text NOT NULL CHECK (kind IN ('llm', 'tool', 'human', 'system')),
            content        text NOT NULL,
            data           jsonb NOT NULL DEFAULT '{}'::jsonb,
            created_at     timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (transcript_id, seq)
        )
        """
    )
    op.execute("CREATE INDEX agent_transcripts_tenant ON agent_transcripts (tenant_id, created_at)")
    # One row per document of a document job: its extraction (JSON) or why it failed.
    op.execute(
        """
        CREATE TABLE agent_document_results (
            job_id       text NOT NULL,
            document_id  uuid NOT NULL,
            tenant_id    uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            ok           boolean NOT NULL,
            result       jsonb NOT NULL DEFAULT '{}'::jsonb,
            error        text NOT NULL DEFAULT '',
            cost_usd     numeric(14, 8) NOT NULL DEFAULT 0,
            created_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (job_id, document_id)
        )
        """
    )
    op.execute("CREATE INDEX agent_document_results_tenant ON agent_document_results (tenant_id)")
    # The only relation the agents' SQL tool reads: document metadata, no content. Dates are
    # kept as ISO text (first 10 characters) so a malformed date cannot fail a query.
    op.execute(
        """
        CREATE VIEW agent_document_metadata AS
        SELECT d.tenant_id,
               d.id AS document_id,
               d.source,
               d.title,
               d.metadata->>'department' AS department,
               d.metadata->>'doc_type' AS doc_type,
               left(d.metadata->>'date', 10) AS doc_date,
               d.created_at,
               d.updated_at
        FROM documents d
        """
    )


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS agent_document_metadata")
    op.execute("DROP TABLE IF EXISTS agent_document_results")
    op.execute("DROP TABLE IF EXISTS agent_transcripts")
