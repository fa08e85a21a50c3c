"""Contracts of document ingestion (shared by the store, the ingest workflow and the API)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class UpsertOutcome(BaseModel):
    """What storing one document did."""

    document_id: str
    status: Literal["created", "updated", "unchanged"]
    version: int
    chunks_written: int
