"""BM25 term statistics and postings, kept by triggers in the same transaction as the chunks.

Keyword search used to compute document frequencies and term frequencies from `chunks.tsv` at
query time: every chunk that matched any common word was unnested and scored, and each
lexeme's document frequency was counted again per matched row (268 s for one question at
26,000 chunks). These tables hold what BM25 needs, per tenant:

- `bm25_tenants`: chunk count and total length (sum of term frequencies), for N and avgdl,
  and a version bumped by every write (searchers cache postings under it);
- `bm25_terms`: one row per (tenant, lexeme) with its document frequency;
- `bm25_postings`: one row per (term, chunk) with the term frequency, the chunk's length and
  a query-independent `impact` (the BM25 term weight at a reference length) that orders each
  term's list so search reads the strongest postings first and stops early.

Statement-level triggers on `chunks` (transition tables) update all three in the statement
that inserts or deletes the chunks, so the statistics commit or roll back with the chunks:
a writer killed mid-upsert leaves neither. Cascaded deletes (a document, a tenant) run the
same triggers. Writers of one tenant lock its `bm25_tenants` row first, so term rows are only
ever locked under it and concurrent writers cannot deadlock on them.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Must match activities/rag/bm25.py: impact orders the lists, and the search's stopping bound
# assumes the same k1, b and reference length.
K1 = 1.2
B = 0.75
REF_LENGTH = 256.0

# The body shared by the trigger and the backfill: add the chunks in `{source}`.
ADD = """
    INSERT INTO bm25_tenants AS s (tenant_id, chunk_count, length_total)
    SELECT n.tenant_id, count(*),
           sum((SELECT coalesce(sum(greatest(1, cardinality(u.positions))), 0)
                  FROM unnest(n.tsv) u))
    FROM {source} n GROUP BY n.tenant_id ORDER BY n.tenant_id
    ON CONFLICT (tenant_id) DO UPDATE
        SET chunk_count = s.chunk_count + excluded.chunk_count,
            length_total = s.length_total + excluded.length_total,
            version = s.version + 1;

    INSERT INTO bm25_terms AS t (tenant_id, lexeme, df)
    SELECT n.tenant_id, u.lexeme, count(*) FROM {source} n, unnest(n.tsv) u
    GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (tenant_id, lexeme) DO UPDATE SET df = t.df + excluded.df;

    INSERT INTO bm25_postings (term_id, chunk_id, tf, dl, impact)
    SELECT t.id, a.id, a.tf, a.dl, bm25_impact(a.tf, CAST(a.dl AS integer))
    FROM (
        SELECT n.id, n.tenant_id, u.lexeme, greatest(1, cardinality(u.positions)) AS tf,
               sum(greatest(1, cardinality(u.positions))) OVER (PARTITION BY n.id) AS dl
        FROM {source} n, unnest(n.tsv) u
    ) a
    JOIN bm25_terms t ON t.tenant_id = a.tenant_id AND t.lexeme = a.lexeme;
"""

REMOVE = """
    UPDATE bm25_tenants s
    SET chunk_count = s.chunk_count - o.n, length_total = s.length_total - o.dl,
        version = s.version + 1
    FROM (
        SELECT o.tenant_id, count(*) AS n,
               sum((SELECT coalesce(sum(greatest(1, cardinality(u.positions))), 0)
                      FROM unnest(o.tsv) u)) AS dl
        FROM old_chunks o GROUP BY o.tenant_id
    ) o
    WHERE s.tenant_id = o.tenant_id;

    UPDATE bm25_terms t SET df = t.df - g.n
    FROM (
        SELECT o.tenant_id, u.lexeme, count(*) AS n FROM old_chunks o, unnest(o.tsv) u
        GROUP BY 1, 2
    ) g
    WHERE t.tenant_id = g.tenant_id AND t.lexeme = g.lexeme;

    DELETE FROM bm25_postings p
    USING old_chunks o, unnest(o.tsv) u, bm25_terms t
    WHERE t.tenant_id = o.tenant_id AND t.lexeme = u.lexeme
      AND p.term_id = t.id AND p.chunk_id = o.id;
"""


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE bm25_tenants (
            tenant_id     uuid PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
            chunk_count   bigint NOT NULL DEFAULT 0 CHECK (chunk_count >= 0),
            length_total  bigint NOT NULL DEFAULT 0 CHECK (length_total >= 0),
            version       bigint NOT NULL DEFAULT 0
        )
        """
    )
    op.execute(
        """
        CREATE TABLE bm25_terms (
            id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id  uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            lexeme     text NOT NULL,
            df         integer NOT NULL CHECK (df >= 0),
            UNIQUE (tenant_id, lexeme)
        )
        """
    )
    # No foreign keys: the triggers own these rows, and a chunk-id index for a cascade would
    # cost as much as the postings themselves.
    op.execute(
        """
        CREATE TABLE bm25_postings (
            term_id   bigint NOT NULL,
            chunk_id  bigint NOT NULL,
            tf        smallint NOT NULL,
            dl        integer NOT NULL,
            impact    real NOT NULL,
            PRIMARY KEY (term_id, chunk_id)
        )
        """
    )
    op.execute(
        "CREATE INDEX bm25_postings_impact ON bm25_postings "
        "(term_id, impact DESC, chunk_id) INCLUDE (tf, dl)"
    )
    op.execute(
        f"""
        CREATE FUNCTION bm25_impact(tf integer, dl integer) RETURNS real
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        RETURN tf * {K1 + 1} / (tf + {K1} * ({1 - B} + {B} * dl / {REF_LENGTH}))
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION bm25_chunks_sync() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP IN ('DELETE', 'UPDATE') THEN
                {REMOVE}
            END IF;
            IF TG_OP IN ('INSERT', 'UPDATE') THEN
                {ADD.format(source="new_chunks")}
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER chunks_bm25_insert AFTER INSERT ON chunks "
        "REFERENCING NEW TABLE AS new_chunks FOR EACH STATEMENT EXECUTE FUNCTION bm25_chunks_sync()"
    )
    op.execute(
        "CREATE TRIGGER chunks_bm25_delete AFTER DELETE ON chunks "
        "REFERENCING OLD TABLE AS old_chunks FOR EACH STATEMENT EXECUTE FUNCTION bm25_chunks_sync()"
    )
    op.execute(
        "CREATE TRIGGER chunks_bm25_update AFTER UPDATE ON chunks "
        "REFERENCING OLD TABLE AS old_chunks NEW TABLE AS new_chunks "
        "FOR EACH STATEMENT EXECUTE FUNCTION bm25_chunks_sync()"
    )
    # A tenant's terms go when the tenant goes; take their postings with them whichever of
    # the two cascades (tenant -> terms, tenant -> chunks) runs first.
    op.execute(
        """
        CREATE FUNCTION bm25_terms_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM bm25_postings p USING old_terms o WHERE p.term_id = o.id;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER bm25_terms_delete AFTER DELETE ON bm25_terms "
        "REFERENCING OLD TABLE AS old_terms FOR EACH STATEMENT "
        "EXECUTE FUNCTION bm25_terms_deleted()"
    )
    for statement in ADD.format(source="chunks").split(";"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS chunks_bm25_insert ON chunks")
    op.execute("DROP TRIGGER IF EXISTS chunks_bm25_delete ON chunks")
    op.execute("DROP TRIGGER IF EXISTS chunks_bm25_update ON chunks")
    op.execute("DROP TABLE IF EXISTS bm25_postings")
    op.execute("DROP TABLE IF EXISTS bm25_terms")
    op.execute("DROP TABLE IF EXISTS bm25_tenants")
    op.execute("DROP FUNCTION IF EXISTS bm25_chunks_sync()")
    op.execute("DROP FUNCTION IF EXISTS bm25_terms_deleted()")
    op.execute("DROP FUNCTION IF EXISTS bm25_impact(integer, integer)")
