"""Database models and engines: SQLAlchemy 2 (async, psycopg 3) over PostgreSQL + pgvector.

The schema itself is owned by the Alembic migrations in `migrations/`; these models mirror it
for queries. `migrate()` brings a database to head and is what `keel up` and the tests call.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import BigInteger, ForeignKey, Integer, Numeric, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR, UUID
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

EMBEDDING_DIM = 384
REPO_ROOT = Path(__file__).resolve().parent.parent


class Base(DeclarativeBase):
    """Declarative base for Keel's tables."""


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()
    )
    name: Mapped[str] = mapped_column(Text, unique=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()
    )
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Text, server_default="")
    prefix: Mapped[str] = mapped_column(Text)
    key_hash: Mapped[str] = mapped_column(Text, unique=True)
    tokens_per_minute: Mapped[int | None] = mapped_column(Integer)
    tokens_per_day: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    revoked_at: Mapped[datetime | None]


class Document(Base):
    __tablename__ = "documents"

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()
    )
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text, server_default="")
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, server_default="{}")
    content_hash: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Chunk(Base):
    __tablename__ = "chunks"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    document_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    token_count: Mapped[int] = mapped_column(Integer)
    embedding: Mapped[Any] = mapped_column(Vector(EMBEDDING_DIM), nullable=True)
    tsv: Mapped[Any] = mapped_column(TSVECTOR, server_default=None, insert_default=None)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ChunkWindow(Base):
    __tablename__ = "chunk_windows"

    chunk_id: Mapped[int] = mapped_column(
        ForeignKey("chunks.id", ondelete="CASCADE"), primary_key=True
    )
    window_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    embedding: Mapped[Any] = mapped_column(Vector(EMBEDDING_DIM))


class LlmCall(Base):
    __tablename__ = "llm_calls"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    call_key: Mapped[str] = mapped_column(Text, unique=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    feature: Mapped[str] = mapped_column(Text)
    workflow_id: Mapped[str] = mapped_column(Text, server_default="")
    run_id: Mapped[str] = mapped_column(Text, server_default="")
    provider: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(Text)
    tokens_in: Mapped[int] = mapped_column(Integer, server_default="0")
    tokens_out: Mapped[int] = mapped_column(Integer, server_default="0")
    tokens_cached: Mapped[int] = mapped_column(Integer, server_default="0")
    latency_ms: Mapped[float] = mapped_column(server_default="0")
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(14, 8), server_default="0")
    cache_layer: Mapped[str] = mapped_column(String, server_default="none")
    status: Mapped[str] = mapped_column(String, server_default="ok")
    error_type: Mapped[str | None] = mapped_column(Text)


class Budget(Base):
    __tablename__ = "budgets"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    period: Mapped[str] = mapped_column(Text, primary_key=True, server_default="month")
    limit_usd: Mapped[Decimal] = mapped_column(Numeric(14, 4))
    limit_tokens: Mapped[int | None] = mapped_column(BigInteger)
    soft_ratio: Mapped[float] = mapped_column(server_default="0.7")
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


def make_engine(dsn: str, *, pool_size: int = 5) -> AsyncEngine:
    """An async engine over psycopg 3; `pool_pre_ping` survives a restarted Postgres."""
    return create_async_engine(dsn, pool_size=pool_size, max_overflow=10, pool_pre_ping=True)


def sessions(engine: AsyncEngine) -> async_sessionmaker[Any]:
    """A session factory that keeps loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


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
