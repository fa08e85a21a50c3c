"""The staging area of ingestion jobs: files waiting for a job, in PostgreSQL.

The API writes here (uploaded bytes, or paths under the server's ingest root) and the ingest
activities read here, so workflow history only ever carries a job id and file-id ranges.
A job's rows are keyed by its workflow id, and deleted when the job ends.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


@dataclass(frozen=True)
class StagedFile:
    """One file of a job: its bytes (upload) or its absolute path (server side).

    Attributes:
        name: Source name the document(s) will be stored under, a relative POSIX path.
        data: Uploaded bytes; None for a server-side file. An upload over the job's size
            limit is staged as empty bytes with its real `size`, so it can be reported
            without being stored.
        path: Absolute path under the ingest root; None for an upload.
        size: Size in bytes.
    """

    name: str
    data: bytes | None
    path: str | None
    size: int


class DuplicateName(ValueError):
    """Two files of one job have the same source name."""


async def stage_files(
    engine: AsyncEngine, *, tenant_id: uuid.UUID, job_id: str, files: Sequence[StagedFile]
) -> int:
    """Add files to a job's staging area; returns how many were added.

    Raises:
        DuplicateName: A name is already staged for this job (nothing is added).
    """
    if not files:
        return 0
    names = [f.name for f in files]
    repeated = [name for name, count in Counter(names).items() if count > 1]
    if repeated:
        raise DuplicateName(f"file name {repeated[0]!r} appears twice in this job")
    async with engine.begin() as conn:
        taken = (
            await conn.execute(
                text("SELECT name FROM ingest_files WHERE job_id = :j AND name = ANY(:n) LIMIT 1"),
                {"j": job_id, "n": names},
            )
        ).scalar_one_or_none()
        if taken is not None:
            raise DuplicateName(f"file name {taken!r} is already staged for this job")
        await conn.execute(
            text(
                "INSERT INTO ingest_files (tenant_id, job_id, name, data, path, size) "
                "VALUES (:t, :j, :name, :data, :path, :size)"
            ),
            [
                {
                    "t": tenant_id,
                    "j": job_id,
                    "name": f.name,
                    "data": f.data,
                    "path": f.path,
                    "size": f.size,
                }
                for f in files
            ],
        )
    return len(files)


async def staged_owner(engine: AsyncEngine, job_id: str) -> tuple[uuid.UUID, int] | None:
    """The tenant that staged files under `job_id` and how many; None if none are staged."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT tenant_id, count(*) FROM ingest_files WHERE job_id = :j "
                    "GROUP BY tenant_id LIMIT 1"
                ),
                {"j": job_id},
            )
        ).one_or_none()
    return (row[0], int(row[1])) if row is not None else None


async def drop_job(engine: AsyncEngine, job_id: str) -> int:
    """Delete a job's staged files (and, by cascade, its documents and chunks)."""
    async with engine.begin() as conn:
        result = await conn.execute(
            text("DELETE FROM ingest_files WHERE job_id = :j"), {"j": job_id}
        )
    return int(result.rowcount)


def under_root(path: Path, root: Path) -> Path | None:
    """`path` resolved (symlinks followed), if it lies inside `root`; else None."""
    resolved = path.resolve()
    base = root.resolve()
    return resolved if resolved == base or resolved.is_relative_to(base) else None


def source_name(name: str) -> str | None:
    """A client-supplied file name as a safe relative POSIX path; None if unusable.

    Absolute paths lose their root, `.` parts are dropped, and names with `..`, control
    characters (PostgreSQL text cannot hold NUL) or over 1,000 characters are refused.
    """
    if len(name) > 1000 or any(ord(c) < 32 or ord(c) == 127 for c in name):
        return None
    parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", ".", "/")]
    if not parts or any(p == ".." for p in parts):
        return None
    return "/".join(parts)
