"""Staged chunks remember the headings they sit under.

The document's text is dropped from staging once it is chunked, so the chunk stage records
each chunk's section ("Profiles › Profile settings › strip") for the upsert stage to store
in the chunk's metadata.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE ingest_chunks ADD COLUMN section text")


def downgrade() -> None:
    op.execute("ALTER TABLE ingest_chunks DROP COLUMN IF EXISTS section")
