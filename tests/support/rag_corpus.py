"""A small labelled corpus for the RAG tests: two departments, several years, three doc types.

Small enough to embed in about a second, varied enough that filters, fusion and reranking each
change what comes back.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from keel.app.rag_seed import EmbeddingCache, Passage, seed_passages
from worker import shared_embedder

PASSAGES = [
    Passage(
        "hr-leave",
        "hr-leave-1",
        "Annual leave policy",
        "New employees receive 25 days of paid vacation in their first year. Unused vacation "
        "days can be carried over until the end of March of the following year.",
        "2024-01-15",
        "HR",
        "policy",
    ),
    Passage(
        "hr-leave",
        "hr-leave-2",
        "Annual leave policy",
        "Parental leave is 16 weeks at full pay for every parent, taken within the first year "
        "after the birth or adoption of a child.",
        "2024-01-15",
        "HR",
        "policy",
    ),
    Passage(
        "hr-remote",
        "hr-remote-1",
        "Remote work guidelines",
        "Employees may work remotely up to three days per week. Remote work from abroad "
        "requires written approval from HR at least two weeks in advance.",
        "2023-06-01",
        "HR",
        "guideline",
    ),
    Passage(
        "fin-travel-2022",
        "fin-travel-2022-1",
        "Travel expense policy 2022",
        "Economy class is required for all flights. Hotel costs are reimbursed up to 150 EUR "
        "per night, and the daily meal allowance is 40 EUR.",
        "2022-03-01",
        "Finance",
        "policy",
    ),
    Passage(
        "fin-travel-2024",
        "fin-travel-2024-1",
        "Travel expense policy 2024",
        "Economy class is required for flights under six hours; business class is allowed on "
        "longer flights. Hotel costs are reimbursed up to 180 EUR per night, and the daily meal "
        "allowance is 55 EUR.",
        "2024-02-01",
        "Finance",
        "policy",
    ),
    Passage(
        "fin-expenses",
        "fin-expenses-1",
        "Expense reports FAQ",
        "Expense reports must be submitted within 30 days of the expense with the original "
        "receipts attached. Reports are approved by the line manager and paid with the next "
        "salary run.",
        "2023-09-10",
        "Finance",
        "faq",
    ),
    Passage(
        "it-vpn",
        "it-vpn-1",
        "VPN setup",
        "Install the WireGuard client and import the configuration file from the self-service "
        "portal. The VPN must be connected before opening the internal wiki from home.",
        "2023-11-20",
        "IT",
        "guide",
    ),
    Passage(
        "it-passwords",
        "it-passwords-1",
        "Password rules",
        "Passwords must be at least 14 characters long and are rotated every 180 days. "
        "Multi-factor authentication is mandatory for email and the VPN.",
        "2024-03-05",
        "IT",
        "policy",
    ),
    Passage(
        "ops-oncall",
        "ops-oncall-1",
        "On-call handbook",
        "The on-call engineer acknowledges a page within 15 minutes and opens an incident "
        "channel for every severity one incident. On-call shifts last one week and are paid "
        "a flat allowance of 300 EUR.",
        "2023-04-12",
        "Engineering",
        "guide",
    ),
    Passage(
        "ops-deploy",
        "ops-deploy-1",
        "Deployment checklist",
        "Production deployments happen Monday to Thursday before 3 pm. Every deployment needs "
        "a rollback plan and a second reviewer on the change request.",
        "2024-05-02",
        "Engineering",
        "guide",
    ),
]

# Another tenant's secret: tenant isolation tests seed it elsewhere and must never see it.
SECRET = Passage(
    "falcon",
    "falcon-1",
    "Project Falcon",
    "Project Falcon launches on 12 October; its launch code word is BLUE HERON.",
    "2024-06-01",
    "Engineering",
    "memo",
)


async def seed(
    engine: AsyncEngine, tenant_id: uuid.UUID, passages: list[Passage] | None = None
) -> dict[str, int]:
    """Seed `passages` (default: the corpus above) and return chunk ids by passage id."""
    from sqlalchemy import text

    await seed_passages(
        engine,
        shared_embedder("onnx"),
        tenant_id=tenant_id,
        passages=passages if passages is not None else PASSAGES,
        cache=EmbeddingCache(None),
    )
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT metadata->>'passage_id', id FROM chunks WHERE tenant_id = :t"),
            {"t": tenant_id},
        )
        return {r[0]: int(r[1]) for r in rows}
