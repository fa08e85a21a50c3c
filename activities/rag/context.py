"""Stage 5 of the RAG pipeline: numbered sources with title, date, department and type, read
from Postgres by chunk id and cut to a token budget."""

from __future__ import annotations

import hashlib
import uuid
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.providers.local import approx_tokens, format_sources
from keel.contracts.rag import AssembledContext, Hit, SourceRef
from keel.rag.prompt import header
from keel.safety import check_document
from keel.safety.neutralise import neutralise


async def fetch_sources(
    engine: AsyncEngine, tenant_id: uuid.UUID, ids: list[int]
) -> list[tuple[SourceRef, str]]:
    """The tenant's chunks `ids` (in that order) with their metadata and text."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT c.id, c.document_id, c.text, c.token_count, c.metadata, d.title "
                    "FROM chunks c JOIN documents d ON d.id = c.document_id "
                    "WHERE c.tenant_id = :t AND c.id = ANY(:ids)"
                ),
                {"t": tenant_id, "ids": ids},
            )
        ).all()
    by_id: dict[int, tuple[SourceRef, str]] = {}
    for chunk_id, document_id, body, tokens, metadata, doc_title in rows:
        meta: dict[str, Any] = metadata or {}
        by_id[int(chunk_id)] = (
            SourceRef(
                number=0,
                chunk_id=int(chunk_id),
                document_id=str(document_id),
                title=str(meta.get("title") or doc_title or ""),
                section=_text(meta.get("section")),
                date=(_text(meta.get("date")) or "")[:10] or None,
                department=_text(meta.get("department")),
                doc_type=_text(meta.get("doc_type")),
                tokens=int(tokens),
            ),
            body,
        )
    return [by_id[i] for i in ids if i in by_id]


def _text(value: Any) -> str | None:
    return str(value) if value is not None and str(value).strip() else None


def _cut(body: str, tokens: int, budget: int) -> str:
    # token_count is in word pieces; cut proportionally by words, which is close enough for a
    # budget (the model's own tokenizer differs anyway).
    words = body.split()
    keep = max(1, int(len(words) * budget / max(tokens, 1)))
    return " ".join(words[:keep]) + " ..."


def assemble(found: list[tuple[SourceRef, str]], token_budget: int) -> AssembledContext:
    """Number the sources in rank order while they fit the budget.

    A source that does not fit is skipped (a later, shorter one may still fit), except the
    first, which is cut to the budget: an answer needs at least one source.
    """
    picked: list[tuple[SourceRef, str]] = []
    used = 0
    for ref, body in found:
        cost = ref.tokens + approx_tokens(header(ref)) + 4
        if used + cost <= token_budget:
            picked.append((ref, body))
            used += cost
        elif not picked:
            room = max(token_budget - approx_tokens(header(ref)) - 4, 16)
            cut = ref.model_copy(update={"tokens": room, "truncated": True})
            picked.append((cut, _cut(body, ref.tokens, room)))
            used = token_budget
    sources = [ref.model_copy(update={"number": n}) for n, (ref, _) in enumerate(picked, 1)]
    block = format_sources(
        [(header(s), body) for s, (_, body) in zip(sources, picked, strict=True)]
    )
    return AssembledContext(block=block, sources=sources, tokens=used)


@lru_cache(maxsize=1)
def screening_rules() -> str:
    """A version of the screening rules: a hash of the safety package's code and models, so
    a verdict stored under older rules is never reused."""
    root = Path(check_document.__code__.co_filename).parent
    digest = hashlib.sha256()
    for path in sorted([*root.glob("*.py"), *root.glob("models/*")]):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


async def screened(
    engine: AsyncEngine, found: list[tuple[SourceRef, str]]
) -> dict[int, str | None]:
    """For the chunks in `found` that carry injected instructions: the text to show instead
    (instructions removed, `keel.safety.neutralise`), or None to withhold the chunk.

    Verdicts are stored per chunk under the rules' version: a chunk is checked once, however
    many questions retrieve it.
    """
    rules = screening_rules()
    ids = [ref.chunk_id for ref, _ in found]
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT chunk_id, blocked, cleaned FROM chunk_screening "
                "WHERE chunk_id = ANY(:ids) AND rules = :r"
            ),
            {"ids": ids, "r": rules},
        )
        stored = {int(r[0]): (bool(r[1]), r[2]) for r in rows}
    fresh: dict[int, tuple[bool, str | None]] = {}
    for ref, body in found:
        if ref.chunk_id in stored:
            continue
        result = neutralise(body)
        blocked = result.text is None or result.removed > 0
        fresh[ref.chunk_id] = (blocked, result.text if blocked else None)
    if fresh:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO chunk_screening (chunk_id, rules, blocked, cleaned) "
                    "SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:rules AS text[]), "
                    "CAST(:blocked AS boolean[]), CAST(:cleaned AS text[])) "
                    "ON CONFLICT (chunk_id) DO UPDATE SET rules = excluded.rules, "
                    "blocked = excluded.blocked, cleaned = excluded.cleaned"
                ),
                {
                    "ids": list(fresh),
                    "rules": [rules] * len(fresh),
                    "blocked": [b for b, _ in fresh.values()],
                    "cleaned": [c for _, c in fresh.values()],
                },
            )
    return {
        chunk_id: cleaned for chunk_id, (blocked, cleaned) in {**stored, **fresh}.items() if blocked
    }


async def assemble_context(
    engine: AsyncEngine, *, tenant_id: uuid.UUID, hits: list[Hit], token_budget: int
) -> AssembledContext:
    """Read the ranked chunks and build the numbered sources block.

    Retrieved text is untrusted: the sentences of a chunk that carry instructions for the
    model (indirect prompt injection) are removed and the rest is used (the chunk is named
    in `neutralised`); a chunk with nothing usable left is withheld (`quarantined`).
    """
    found = await fetch_sources(engine, tenant_id, [h.chunk_id for h in hits])
    flagged = await screened(engine, found)
    shown: list[tuple[SourceRef, str]] = []
    for ref, body in found:
        text_shown = flagged.get(ref.chunk_id, body)
        if text_shown is not None:
            shown.append((ref, text_shown))
    assembled = assemble(shown, token_budget)
    return assembled.model_copy(
        update={
            "quarantined": [i for i, cleaned in flagged.items() if cleaned is None],
            "neutralised": [i for i, cleaned in flagged.items() if cleaned is not None],
        }
    )
