"""Helpers for agent tests: scripted model replies per role, requests, ledger and transcript.

`RoleScript` is a `ProviderHarness.reply_fn`: it reads which role is speaking from the system
prompt the workflow sent and answers with that role's next scripted reply (the last one
repeats), so a test states what each agent says and the real workflow does the rest.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from sqlalchemy import text

from agents.registry import TEAMS, resolve_team
from keel.clients import Clients
from keel.contracts.agents import AgentLimits, AgentRunRequest, ToolConfig
from keel.contracts.gateway import CallContext
from keel.contracts.guards import RunBudget
from keel.runs import gateway_config
from keel.settings import Settings
from tests.support.provider_harness import RecordedRequest

ROLES = ("planner", "researcher", "analyst", "critic", "extractor")
Reply = str | Callable[[RecordedRequest], str]


def system_text(body: dict[str, Any]) -> str:
    """The system prompt of an Anthropic or OpenAI request body."""
    system = body.get("system")
    if isinstance(system, list):
        return " ".join(block.get("text", "") for block in system)
    if isinstance(system, str):
        return system
    for message in body.get("messages", []):
        if message.get("role") == "system":
            return str(message.get("content", ""))
    return ""


def last_user_text(body: dict[str, Any]) -> str:
    """The text of the last user message of a request body."""
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(part.get("text", "") for part in content)
            return str(content)
    return ""


def role_of(body: dict[str, Any]) -> str:
    system = system_text(body)
    for role in ROLES:
        if f"You are the {role}" in system or (role == "extractor" and "key points" in system):
            return role
    return "unknown"


class RoleScript:
    """Per-role reply queues; the last reply of a role repeats. Thread-safe."""

    def __init__(self, **replies: list[Reply]) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, deque[Reply]] = {k: deque(v) for k, v in replies.items()}
        self.calls: list[tuple[str, str]] = []  # (role, last user message)

    def __call__(self, request: RecordedRequest) -> str:
        role = role_of(request.body)
        with self._lock:
            self.calls.append((role, last_user_text(request.body)))
            queue = self._queues.get(role)
            if not queue:
                return json.dumps({"answer": f"({role} has no script)"})
            reply = queue.popleft() if len(queue) > 1 else queue[0]
        return reply(request) if callable(reply) else reply

    def count(self, role: str) -> int:
        with self._lock:
            return sum(1 for r, _ in self.calls if r == role)


def plan(*steps: tuple[str, str]) -> str:
    return json.dumps({"steps": [{"agent": a, "instruction": i} for a, i in steps]})


def tool(name: str, **args: Any) -> str:
    return json.dumps({"tool": name, "args": args})


def answer(text_: str) -> str:
    return json.dumps({"answer": text_})


def verdict(accept: bool, feedback: str = "") -> str:
    return json.dumps({"verdict": "accept" if accept else "reject", "feedback": feedback})


def agent_request(
    settings: Settings,
    tenant: str,
    tenant_id: uuid.UUID,
    task: str = "What is 15% of 1200?",
    *,
    team: str = "research",
    budget: RunBudget | None = None,
    tools: ToolConfig | None = None,
    **limits: Any,
) -> AgentRunRequest:
    """An `AgentTeamWorkflow` input as the API would build it, with test limits."""
    defaults: dict[str, Any] = {"escalate_budget_ratio": None}
    return AgentRunRequest(
        task=task,
        team=resolve_team(TEAMS[team], AgentLimits(**{**defaults, **limits})),
        context=CallContext(
            tenant=tenant,
            tenant_id=str(tenant_id),
            feature="agents",
            run_budget=budget or RunBudget(),
        ),
        gateway=gateway_config(settings),
        rag=settings.rag,
        tools=tools or ToolConfig(),
    )


async def ledger(clients: Clients, workflow_id: str) -> list[dict[str, Any]]:
    """Ledger rows of a run and its children (their ids start with the run's id)."""
    async with clients.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT workflow_id, run_id, provider, model, status, cost_usd, cache_layer "
                "FROM llm_calls WHERE workflow_id = :w OR workflow_id LIKE :children ORDER BY id"
            ),
            {"w": workflow_id, "children": workflow_id + "-%"},
        )
        return [dict(r._mapping) for r in rows]


async def transcript(clients: Clients, workflow_id: str) -> list[dict[str, Any]]:
    async with clients.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT seq, run_id, round, turn, role, kind, content, data "
                "FROM agent_transcripts WHERE transcript_id = :w ORDER BY seq"
            ),
            {"w": workflow_id},
        )
        return [dict(r._mapping) for r in rows]


async def seed_documents(
    clients: Clients, tenant_id: uuid.UUID, prefix: str, count: int
) -> list[str]:
    """Store `count` small documents (one chunk each) under source `prefix<n>`."""
    ids = []
    async with clients.engine.begin() as conn:
        for n in range(count):
            row = await conn.execute(
                text(
                    "INSERT INTO documents (tenant_id, source, title, metadata, content_hash) "
                    "VALUES (:t, :s, :title, CAST(:m AS jsonb), :s) RETURNING id"
                ),
                {
                    "t": tenant_id,
                    "s": f"{prefix}{n}",
                    "title": f"Policy {n}",
                    "m": '{"department": "HR", "doc_type": "policy"}',
                },
            )
            document_id = row.scalar_one()
            await conn.execute(
                text(
                    "INSERT INTO chunks (tenant_id, document_id, position, text, token_count) "
                    "VALUES (:t, :d, 0, :x, 12)"
                ),
                {
                    "t": tenant_id,
                    "d": document_id,
                    "x": f"Policy {n} allows {n + 10} days of leave. Requests go to HR.",
                },
            )
            ids.append(str(document_id))
    return ids
