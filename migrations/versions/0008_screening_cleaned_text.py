"""Keep the usable part of a chunk that carries injected instructions.

A chunk whose text carries an instruction for the model used to be withheld whole, losing
the document's real content with it. Now its instruction sentences are removed and the rest
is shown; `cleaned` holds that rest (NULL when nothing usable remains, or the chunk is clean).

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE chunk_screening ADD COLUMN cleaned text")
    # Verdicts made before this column existed would read as "withhold whole": re-screen.
    op.execute("DELETE FROM chunk_screening WHERE blocked")


def downgrade() -> None:
    op.execute("ALTER TABLE chunk_screening DROP COLUMN IF EXISTS cleaned")
