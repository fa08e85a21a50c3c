"""Alembic environment: the URL comes from Keel's settings, never from alembic.ini; the
schema the migrations must produce is `keel.schema.metadata` (checked by the tests, and by
`alembic check` against any database)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from keel.schema import metadata
from keel.settings import settings

config = context.config


def run_migrations_online() -> None:
    url = config.attributes.get("url") or settings().database_dsn
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=metadata, transaction_per_migration=True
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
