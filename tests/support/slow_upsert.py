"""`python -m tests.support.slow_upsert DSN TENANT_ID SOURCE CHUNKS`: one large upsert through
Keel's store code, for a test that SIGKILLs this process while the transaction is open."""

from __future__ import annotations

import asyncio
import sys
import uuid

from sqlalchemy.ext.asyncio import create_async_engine

from activities.store import ChunkRecord, upsert_document


async def main(dsn: str, tenant_id: str, source: str, count: int) -> None:
    engine = create_async_engine(dsn)
    vector = [1.0] + [0.0] * 383
    chunks = [
        ChunkRecord(
            position=i,
            text=f"killed writer chunk {i} mentions quarantine lexeme zyzzogeton {i % 97}",
            token_count=12,
            embedding=vector,
            windows=[vector, vector],
        )
        for i in range(count)
    ]
    sys.stdout.write("writing\n")
    sys.stdout.flush()
    await upsert_document(
        engine,
        tenant_id=uuid.UUID(tenant_id),
        source=source,
        title=source,
        metadata={},
        content_hash=f"{source}-{count}",
        chunks=chunks,
    )
    sys.stdout.write("committed\n")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
