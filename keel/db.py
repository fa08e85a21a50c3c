"""Engines and migrations: SQLAlchemy 2 (async, psycopg 3) over PostgreSQL + pgvector.

The schema is created by the Alembic migrations in `migrations/` and stated, table by table,
in `keel.schema` (their `target_metadata`). `migrate()` brings a database to head and is what
`keel up` and the tests call.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from numpy.typing import ArrayLike
from psycopg.adapt import Dumper
from psycopg.pq import Format
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

REPO_ROOT = Path(__file__).resolve().parent.parent


class PackedVector:
    """Float vectors bound as one pgvector value in its binary wire form.

    The statement must say the type, `CAST(:v AS vector)`: the parameter is sent untyped and
    PostgreSQL reads it with pgvector's binary input. Nothing is formatted as text on either
    side (a 384-float vector as text costs ~90 µs to write in Python and as much to parse).
    Several vectors are packed end to end into one value (`subvector` cuts them apart in SQL);
    a vector holds at most 16,000 floats.
    """

    __slots__ = ("values",)

    def __init__(self, values: ArrayLike) -> None:
        self.values = np.ascontiguousarray(values, dtype=">f4").reshape(-1)


class _PackedVectorDumper(Dumper):
    format = Format.BINARY
    oid = 0  # untyped: the statement's CAST names the type

    def dump(self, obj: PackedVector) -> bytes:
        return struct.pack(">HH", obj.values.size, 0) + obj.values.tobytes()


psycopg.adapters.register_dumper(PackedVector, _PackedVectorDumper)


def make_engine(dsn: str, *, pool_size: int = 5) -> AsyncEngine:
    """An async engine over psycopg 3; `pool_pre_ping` survives a restarted Postgres."""
    return create_async_engine(dsn, pool_size=pool_size, max_overflow=10, pool_pre_ping=True)


def alembic_config(dsn: str) -> Any:
    """The Alembic config for this repository's migrations, aimed at `dsn`."""
    from alembic.config import Config

    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    config.attributes["url"] = dsn
    return config


def migrate(dsn: str, revision: str = "head") -> None:
    """Upgrade the database at `dsn` to `revision` (idempotent)."""
    from alembic import command

    command.upgrade(alembic_config(dsn), revision)


def downgrade(dsn: str, revision: str) -> None:
    """Downgrade the database at `dsn` to `revision` (`base` drops everything)."""
    from alembic import command

    command.downgrade(alembic_config(dsn), revision)
