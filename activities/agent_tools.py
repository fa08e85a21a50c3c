"""The agents' tools that touch the world: calculator, document-metadata SQL, HTTP GET.

Each is an activity (`agent_tool_<name>`), so every tool call is in the run's history with
its arguments and its output, and a worker that dies mid-call is replaced by a retry.
Mistakes the model can fix (a bad expression, a host not on the allow-list, a 404) come back
as `ToolOutput(ok=False)`, which the workflow shows to the model; only infrastructure
failures raise, so Temporal retries them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.netguard import IpAddress, refusal, vet_host
from keel.calculator import CalculatorError, evaluate, format_number
from keel.contracts.agents import (
    CalculatorArgs,
    HttpGetArgs,
    SqlMetadataArgs,
    ToolOutput,
    ToolRequest,
)
from keel.safety.neutralise import neutralise
from keel.telemetry import activity_context

HEARTBEAT_SECONDS = 1.0
# The fixed queries of `sql_metadata`. Only these run, only against the
# `agent_document_metadata` view, always filtered by the caller's tenant; the model fills in
# bound parameters, never SQL text.
_FILTERS = """
    tenant_id = :tenant_id
    AND (CAST(:department AS text) IS NULL OR department = :department)
    AND (CAST(:doc_type AS text) IS NULL OR doc_type = :doc_type)
    AND (CAST(:date_from AS text) IS NULL OR doc_date >= :date_from)
    AND (CAST(:date_to AS text) IS NULL OR doc_date <= :date_to)
    AND (CAST(:title AS text) IS NULL OR title ILIKE '%' || :title || '%')
"""
_LIST = f"""
    SELECT title, department, doc_type, doc_date, source FROM agent_document_metadata
    WHERE {_FILTERS} ORDER BY doc_date DESC NULLS LAST, title LIMIT :limit
"""
_COUNT = {
    key: f"""
    SELECT coalesce({expr}, '(none)') AS key, count(*) AS n FROM agent_document_metadata
    WHERE {_FILTERS} GROUP BY 1 ORDER BY n DESC, key LIMIT :limit
    """
    for key, expr in {
        "department": "department",
        "doc_type": "doc_type",
        "month": "left(doc_date, 7)",
    }.items()
}


def _bad_args(tool: str, exc: ValidationError) -> ToolOutput:
    problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return ToolOutput(ok=False, text=f"invalid arguments for {tool}: {problems}")


def host_allowed(url: str, allowed: list[str]) -> bool:
    """True when `url` is http(s) and its `host` or `host:port` is on the allow-list.

    Matching is exact (no wildcard, no subdomain): a list entry names a host deliberately.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
        return False
    host = parts.hostname.lower()
    try:
        port = parts.port
    except ValueError:
        return False
    entries = {a.lower().rstrip("/") for a in allowed}
    return host in entries or (port is not None and f"{host}:{port}" in entries)


def _private_ok(url: str, request: ToolRequest) -> bool:
    return host_allowed(url, request.config.http_private_hosts)


async def _vet(url: str, private_ok: bool) -> str | None:
    """Why the URL's host may not be fetched (see `activities.netguard`), or None."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return await vet_host(host, port, private_ok=private_ok)


def _peer(response: httpx.Response) -> IpAddress | None:
    stream = response.extensions.get("network_stream")
    address = stream.get_extra_info("server_addr") if stream is not None else None
    if not address:
        return None
    return ipaddress.ip_address(str(address[0]).split("%", 1)[0])


class AgentToolActivities:
    """Tools that need clients: the database for metadata queries."""

    def __init__(self, *, engine: AsyncEngine) -> None:
        self.engine = engine

    @activity.defn(name="agent_tool_calculator")
    async def calculator(self, request: ToolRequest) -> ToolOutput:
        """Evaluate an arithmetic expression safely (AST walk, no eval)."""
        try:
            args = CalculatorArgs.model_validate(request.args)
        except ValidationError as exc:
            return _bad_args("calculator", exc)
        try:
            value = evaluate(args.expression)
        except CalculatorError as exc:
            return ToolOutput(ok=False, text=f"calculator: {exc}")
        shown = format_number(value)
        return ToolOutput(ok=True, text=f"{args.expression} = {shown}", data={"value": value})

    @activity.defn(name="agent_tool_sql_metadata")
    async def sql_metadata(self, request: ToolRequest) -> ToolOutput:
        """List or count the tenant's documents by metadata, in a read-only transaction."""
        try:
            args = SqlMetadataArgs.model_validate(request.args)
        except ValidationError as exc:
            return _bad_args("sql_metadata", exc)
        params: dict[str, Any] = {
            "tenant_id": uuid.UUID(request.tenant_id),
            "department": args.department,
            "doc_type": args.doc_type,
            "date_from": args.date_from.isoformat() if args.date_from else None,
            "date_to": args.date_to.isoformat() if args.date_to else None,
            "title": args.title_contains,
            "limit": args.limit,
        }
        query = _COUNT[args.count_by] if args.count_by else _LIST
        with activity_context(request.tenant):
            async with self.engine.connect() as conn, conn.begin():
                # Belt and braces: even the fixed query runs where writes are impossible,
                # and a pathological plan cannot hold a connection for long.
                await conn.execute(text("SET TRANSACTION READ ONLY"))
                await conn.execute(text("SET LOCAL statement_timeout = '5s'"))
                rows = (await conn.execute(text(query), params)).all()
        if args.count_by:
            lines = [f"{key}: {n}" for key, n in rows]
            body = "\n".join(lines) or "no documents match"
            return ToolOutput(
                ok=True,
                text=f"documents by {args.count_by}:\n{body}",
                data={"counts": {str(key): int(n) for key, n in rows}},
            )
        lines = [
            f"- {title or '(untitled)'} | {dept or '-'} | {kind or '-'} | {day or '-'} | {source}"
            for title, dept, kind, day, source in rows
        ]
        header = f"{len(rows)} document(s) (title | department | doc_type | date | source):"
        return ToolOutput(
            ok=True,
            text=header + ("\n" + "\n".join(lines) if lines else ""),
            data={"count": len(rows)},
        )

    @activity.defn(name="agent_tool_http_get")
    async def http_get(self, request: ToolRequest) -> ToolOutput:
        """GET a URL whose host is on the allow-list and resolves to addresses it may reach
        (`activities.netguard`); no redirects, bounded size and time.

        Heartbeats while the request is in flight, so a worker that dies mid-fetch is
        noticed within the heartbeat timeout and the fetch retried elsewhere.
        """
        try:
            args = HttpGetArgs.model_validate(request.args)
        except ValidationError as exc:
            return _bad_args("http_get", exc)
        if not host_allowed(args.url, request.config.http_allow_hosts):
            allowed = ", ".join(request.config.http_allow_hosts) or "none"
            return ToolOutput(
                ok=False, text=f"http_get: host not allowed for {args.url} (allowed: {allowed})"
            )
        private_ok = _private_ok(args.url, request)
        refused = await _vet(args.url, private_ok)
        if refused is not None:
            return ToolOutput(ok=False, text=f"http_get: refused {args.url}: {refused}")
        fetch = asyncio.create_task(self._fetch(args.url, request, private_ok))
        try:
            while not fetch.done():
                activity.heartbeat()
                await asyncio.wait({fetch}, timeout=HEARTBEAT_SECONDS)
        finally:
            if not fetch.done():
                fetch.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await fetch
        return fetch.result()

    async def _fetch(self, url: str, request: ToolRequest, private_ok: bool) -> ToolOutput:
        limit = request.config.http_max_bytes
        try:
            async with (
                httpx.AsyncClient(
                    follow_redirects=False, timeout=request.config.http_timeout_seconds
                ) as client,
                client.stream("GET", url, headers={"accept": "text/*, application/json"}) as resp,
            ):
                # The address actually connected to, checked again: a DNS answer that
                # changed since `_vet` (rebinding) is caught before the body is read.
                peer = _peer(resp)
                if peer is not None:
                    reason = refusal(peer, private_ok=private_ok)
                    if reason is not None:
                        return ToolOutput(
                            ok=False,
                            text=f"http_get: refused {url}: connected to {peer} ({reason})",
                        )
                body = bytearray()
                async for piece in resp.aiter_bytes():
                    body.extend(piece)
                    if len(body) >= limit:
                        break
                status = resp.status_code
                location = resp.headers.get("location", "")
        except httpx.TimeoutException:
            return ToolOutput(ok=False, text=f"http_get: {url} timed out")
        except httpx.HTTPError as exc:
            return ToolOutput(ok=False, text=f"http_get: {url} failed: {type(exc).__name__}")
        content = bytes(body[:limit]).decode("utf-8", "replace")
        if 300 <= status < 400:
            return ToolOutput(
                ok=False,
                text=f"http_get: {url} redirects to {location or '?'}; redirects are not "
                "followed (fetch the target if its host is allowed)",
            )
        if status >= 400:
            return ToolOutput(ok=False, text=f"http_get: {url} answered HTTP {status}")
        # Fetched text is untrusted data: instructions in it are cut out (or the page is
        # withheld when nothing else is left), as for retrieved chunks.
        screened = neutralise(content)
        if screened.text is None:
            return ToolOutput(
                ok=False, text=f"http_get: {url} withheld: it carries instructions for the model"
            )
        shown = screened.text[: request.config.output_chars]
        if screened.removed:
            shown += f"\n[Keel removed {screened.removed} instruction(s) found in this page]"
        return ToolOutput(
            ok=True,
            text=shown,
            data={
                "status": status,
                "bytes": len(body),
                "truncated": len(body) >= limit,
                "instructions_removed": screened.removed,
            },
        )
