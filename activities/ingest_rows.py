"""The staging rows a staged file becomes: parsed documents (with the hash that decides
whether they changed) or failures with a short reason; and the chunks of a document."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from tokenizers import Tokenizer

from keel.contracts.ingest import IngestOptions
from keel.embedding import load_tokenizer, minilm_tokenizer_path
from keel.text.chunking import Chunk, chunk_text
from keel.text.parsing import ParsedDocument, ParseError, parse_file

MAX_REASON_CHARS = 300


@lru_cache(maxsize=1)
def chunking_tokenizer() -> Tokenizer:
    """The tokenizer chunks are measured with: all-MiniLM-L6-v2's WordPiece.

    Every configured embedder reads it (the ONNX and sentence-transformers models are
    MiniLM; the OpenAI embedder sizes its chunks with it too, see `OpenAIEmbedder`), and
    loading only the tokenizer keeps the model off the cpu workers.
    """
    return load_tokenizer(minilm_tokenizer_path())


def content_hash(
    doc: ParsedDocument, title: str, metadata: dict[str, Any], opts: IngestOptions
) -> str:
    """What makes two versions of a document the same: text, title, metadata, and the
    settings that shape its chunks and vectors (so changing them re-ingests)."""
    payload = json.dumps(
        {
            "text": doc.text,
            "title": title,
            "metadata": metadata,
            "chunking": [opts.target_tokens, opts.overlap_tokens],
            "embedder": opts.embedder,
        },
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def reason_text(message: str) -> str:
    return message if len(message) <= MAX_REASON_CHARS else message[: MAX_REASON_CHARS - 1] + "…"


def parse_bytes(
    name: str, data: bytes, max_bytes: int
) -> tuple[list[ParsedDocument], list[ParseError]]:
    errors: list[ParseError] = []
    try:
        docs = parse_file(name, data, max_bytes=max_bytes, errors=errors)
    except ParseError as exc:
        return [], [exc]
    return docs, errors


def cut(body: str, opts: IngestOptions) -> list[Chunk]:
    return chunk_text(
        body,
        chunking_tokenizer(),
        target_tokens=opts.target_tokens,
        overlap_tokens=opts.overlap_tokens,
    )


@dataclass(frozen=True)
class StagedFile:
    id: int
    name: str
    path: str | None
    size: int


def failed_row(source: str, kind: str, reason: str) -> dict[str, Any]:
    return {
        "source": source,
        "title": "",
        "metadata": "{}",
        "text": None,
        "hash": None,
        "prior": None,
        "status": "failed",
        "kind": kind,
        "error": reason_text(reason),
    }


def doc_row(doc: ParsedDocument, opts: IngestOptions) -> dict[str, Any]:
    """The staging row of a parsed document (a failed row when PostgreSQL cannot hold it)."""
    # Job metadata (CLI flags, API field) overrides what the document declares.
    metadata = {**doc.metadata, **opts.metadata}
    title = opts.metadata.get("title") or doc.title
    metadata["title"] = title
    encoded = json.dumps(metadata, ensure_ascii=False)
    if "\x00" in doc.text or "\\u0000" in encoded or "\x00" in title:
        # PostgreSQL text and jsonb cannot hold NUL characters.
        return failed_row(doc.source, "binary", "document contains NUL characters")
    return {
        "source": doc.source,
        "title": title,
        "metadata": encoded,
        "text": doc.text,
        "hash": content_hash(doc, title, metadata, opts),
        "prior": None,
        "status": "parsed",
        "kind": None,
        "error": None,
    }
