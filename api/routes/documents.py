"""`DELETE /v1/documents?source=...`: remove a stored document, its chunks and its windows.

Deleting also drops cached answers that cited the document (an invalidation event is written
in the same transaction as the delete, then applied here).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from activities.store import apply_invalidations, delete_document
from api.deps import ClientsDep, PrincipalDep
from api.errors import ErrorResponse, not_found

router = APIRouter(prefix="/v1/documents", tags=["documents"])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing, malformed or unknown API key"},
    404: {"model": ErrorResponse, "description": "No document with this source for this tenant"},
}


class DocumentDeleted(BaseModel):
    source: str
    deleted: bool = True


@router.delete("", response_model=DocumentDeleted, responses=ERRORS)
async def delete(
    principal: PrincipalDep,
    clients: ClientsDep,
    source: Annotated[str, Query(min_length=1, max_length=2000, description="As ingested.")],
) -> DocumentDeleted:
    """Delete the caller's document stored under `source` (e.g. `handbook/leave.md`)."""
    # No stored source holds a NUL (PostgreSQL text cannot), and asking for one would fail.
    if "\x00" in source or not await delete_document(
        clients.engine, tenant_id=principal.tenant_id, source=source
    ):
        raise not_found("document", source)
    await apply_invalidations(clients.engine, clients.redis)
    return DocumentDeleted(source=source)
