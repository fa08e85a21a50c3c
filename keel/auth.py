"""Tenants and API keys. A key is shown once at creation; only its SHA-256 is stored."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from keel.quickdb import QuickDb
from keel.schema import api_keys

KEY_PREFIX = "keel_"
TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class InvalidTenantName(ValueError):
    """Tenant names are lowercase letters, digits, '-' and '_', at most 63 characters."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant a key belongs to, and that key's limits."""

    tenant_id: uuid.UUID
    tenant: str
    key_id: uuid.UUID
    tokens_per_minute: int | None
    tokens_per_day: int | None
    tenant_settings: dict[str, Any] = field(default_factory=dict)


def hash_key(key: str) -> str:
    """SHA-256 hex of a key; keys carry 256 random bits, so no slow hash is needed."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh API key: `keel_` + 43 URL-safe characters (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


async def ensure_tenant(engine: AsyncEngine, name: str) -> uuid.UUID:
    """Id of tenant `name`, creating it if needed (safe under concurrency)."""
    if not TENANT_NAME.match(name):
        raise InvalidTenantName(
            f"invalid tenant name {name!r}: use lowercase letters, digits, '-' and '_' "
            "(1-63 characters, starting with a letter or digit)"
        )
    async with engine.begin() as conn:
        row = (
            await conn.execute(
                text(
                    "INSERT INTO tenants (name) VALUES (:name) "
                    "ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id"
                ),
                {"name": name},
            )
        ).one()
    return uuid.UUID(str(row[0]))


async def create_key(
    engine: AsyncEngine,
    tenant: str,
    *,
    name: str = "",
    tokens_per_minute: int | None = None,
    tokens_per_day: int | None = None,
) -> str:
    """Create a key for `tenant` (creating the tenant if new) and return it in clear, once."""
    tenant_id = await ensure_tenant(engine, tenant)
    key = new_key()
    async with engine.begin() as conn:
        await conn.execute(
            api_keys.insert().values(
                tenant_id=tenant_id,
                name=name,
                prefix=key[: len(KEY_PREFIX) + 6],
                key_hash=hash_key(key),
                tokens_per_minute=tokens_per_minute,
                tokens_per_day=tokens_per_day,
            )
        )
    return key


_KEY_SQL = (
    "SELECT k.tenant_id, t.name, k.id, k.tokens_per_minute, k.tokens_per_day, "
    "t.settings FROM api_keys k JOIN tenants t ON t.id = k.tenant_id "
    "WHERE k.key_hash = %(h)s AND k.revoked_at IS NULL"
)


async def resolve_key(db: AsyncEngine | QuickDb, key: str) -> Principal | None:
    """The principal for a presented key, or None if unknown or revoked.

    Every request runs this, so it is one plain indexed query; the API passes its `QuickDb`
    (~0.2 ms), other callers the engine.
    """
    params = {"h": hash_key(key)}
    if isinstance(db, QuickDb):
        row = await db.fetchone(_KEY_SQL, params)
    else:
        async with db.connect() as conn:
            found = await conn.exec_driver_sql(_KEY_SQL, params)
            row = found.one_or_none()
    if row is None:
        return None
    return Principal(
        tenant_id=row[0],
        tenant=row[1],
        key_id=row[2],
        tokens_per_minute=row[3],
        tokens_per_day=row[4],
        tenant_settings=dict(row[5] or {}),
    )
