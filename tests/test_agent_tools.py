"""Agent tools and the pure parts of the loop: calculator, reply parsing, bounds, registry,
the metadata SQL tool on a real Postgres, the HTTP tool against a local server."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import text
from temporalio.testing import ActivityEnvironment

from activities.agent_tools import AgentToolActivities, host_allowed
from agents.protocol import CriticReply, PlannerReply, SpecialistReply, extract_json, parse_reply
from agents.registry import TEAMS, UnknownRole, output_model, resolve_team, role_spec
from agents.tools import TOOLS, describe
from keel.auth import ensure_tenant
from keel.calculator import CalculatorError, evaluate, format_number
from keel.clients import Clients
from keel.contracts.agents import AgentLimits, LoopState, TeamDecl, ToolConfig, ToolRequest
from keel.contracts.guards import BudgetState, RunBudget
from keel.guards.agent_loop import (
    bound_reached,
    budget_needs_person,
    classify_repeat,
    rejections_need_person,
    tool_signature,
)

# --- calculator ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("1 + 2 * 3", 7),
        ("(1200 * 0.15) + 3**2", 189),
        ("2^10", 1024),
        ("-4 + +2", -2),
        ("7 // 2 + 7 % 2", 4),
        ("sqrt(16) + max(1, 5, 3)", 9),
        ("round(pi, 2)", 3.14),
    ],
)
def test_calculator_computes(expression: str, value: float) -> None:
    assert evaluate(expression) == pytest.approx(value)


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("__import__('os').system('id')", "unknown function"),
        ("open('/etc/passwd')", "unknown function"),
        ("().__class__", "not allowed"),
        ("x + 1", "unknown name"),
        ("'a' * 3", "only numbers"),
        ("1 / 0", "division by zero"),
        ("9 ** 9 ** 9", "exponent larger"),
        ("10.0 ** 300 * 10.0 ** 300", "out of range"),
        ("[1, 2]", "not allowed"),
        ("1 if 1 else 2", "not allowed"),
        ("lambda: 1", "not allowed"),
        ("1 +", "not an arithmetic expression"),
        ("1" + "+1" * 120, "more than"),
        ("True + 1", "only numbers"),
    ],
)
def test_calculator_refuses_what_is_not_arithmetic(expression: str, reason: str) -> None:
    with pytest.raises(CalculatorError, match=reason):
        evaluate(expression)


def test_calculator_formats_numbers() -> None:
    assert format_number(189.0) == "189"
    assert format_number(1 / 3) == "0.333333333333"


# --- reply parsing -------------------------------------------------------------------------


def test_extract_json_from_prose_and_fences() -> None:
    assert extract_json('Sure! {"answer": "42"} Hope that helps.') == {"answer": "42"}
    assert extract_json('```json\n{"verdict": "accept"}\n```') == {"verdict": "accept"}
    assert extract_json("no json here") is None
    assert extract_json("[1, 2]") is None


def test_parse_reply_names_the_problem() -> None:
    verdict, problem = parse_reply('{"verdict": "maybe"}', CriticReply)
    assert verdict is None and "verdict" in problem
    call, problem = parse_reply(
        '{"tool": "calculator", "args": {"expression": "1+1"}}', SpecialistReply
    )
    assert isinstance(call, SpecialistReply) and call.tool == "calculator" and problem == ""
    plan, _ = parse_reply('{"steps": [{"agent": "analyst", "instruction": "add"}]}', PlannerReply)
    assert isinstance(plan, PlannerReply) and plan.steps[0].agent == "analyst"


# --- registry and teams --------------------------------------------------------------------


def test_roles_are_data_and_teams_resolve() -> None:
    team = resolve_team(TEAMS["research"])
    assert team.planner.kind == "planner" and team.critic.kind == "critic"
    assert [s.name for s in team.specialists] == ["researcher", "analyst"]
    assert "calculator" in team.specialist("analyst").tools  # type: ignore[union-attr]
    assert issubclass(output_model("critic"), CriticReply)
    assert set(role_spec("researcher").tools) <= set(TOOLS)
    assert "calculator" in describe(["calculator"]) and "expression" in describe(["calculator"])
    with pytest.raises(UnknownRole):
        resolve_team(TeamDecl(name="x", planner="planner", specialists=["ghost"], critic="critic"))
    with pytest.raises(ValueError, match="kind"):
        resolve_team(TeamDecl(name="x", planner="critic", specialists=["analyst"], critic="critic"))


# --- loop guards ---------------------------------------------------------------------------


def test_bounds_and_escalation_triggers() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    limits = AgentLimits(max_turns=3, deadline_seconds=60, escalate_after_rejections=2)
    state = LoopState(started_at=now)
    assert bound_reached(state, limits, now) is None
    assert bound_reached(state.model_copy(update={"turns": 3}), limits, now) == "max_turns"
    late = now + timedelta(seconds=61)
    assert bound_reached(state, limits, late) == "deadline"
    # Time spent waiting for a person does not count against the deadline.
    assert bound_reached(state.model_copy(update={"waited_seconds": 30}), limits, late) is None

    assert not rejections_need_person(state.model_copy(update={"rejections": 1}), limits)
    assert rejections_need_person(state.model_copy(update={"rejections": 2}), limits)
    never = limits.model_copy(update={"escalate_after_rejections": 0})
    assert not rejections_need_person(state.model_copy(update={"rejections": 99}), never)

    spent = state.model_copy(update={"budget": BudgetState(spent_usd=0.8)})
    assert budget_needs_person(spent, limits, RunBudget(max_usd=1.0))
    assert not budget_needs_person(spent, limits, RunBudget())
    asked = spent.model_copy(update={"budget_escalated": True})
    assert not budget_needs_person(asked, limits, RunBudget(max_usd=1.0))


def test_repeated_tool_calls_are_classified() -> None:
    a = tool_signature("calculator", {"expression": "1+1"})
    assert a == tool_signature("calculator", {"expression": "1+1"})
    assert classify_repeat(a, []) == "new"
    assert classify_repeat(a, [a]) == "repeat"
    assert classify_repeat(a, [a, a]) == "loop"


# --- tools as activities -------------------------------------------------------------------


def test_host_allow_list_is_exact() -> None:
    allowed = ["docs.example.com", "127.0.0.1:8080"]
    assert host_allowed("https://docs.example.com/a", allowed)
    assert host_allowed("http://127.0.0.1:8080/x", allowed)
    assert not host_allowed("http://127.0.0.1:9090/x", allowed)
    assert not host_allowed("https://evil.docs.example.com/", allowed)
    assert not host_allowed("https://docs.example.com@evil.com/", allowed)
    assert not host_allowed("file:///etc/passwd", allowed)
    assert not host_allowed("ftp://docs.example.com/", allowed)


async def _seed_documents(clients: Clients, tenant_id: uuid.UUID) -> None:
    rows = [
        ("hr-1", "Leave policy", {"department": "HR", "doc_type": "policy", "date": "2024-03-01"}),
        ("hr-2", "Hiring guide", {"department": "HR", "doc_type": "guide", "date": "2024-05-10"}),
        (
            "fin-1",
            "Q1 report",
            {"department": "Finance", "doc_type": "report", "date": "2024-04-02"},
        ),
    ]
    async with clients.engine.begin() as conn:
        for source, title, meta in rows:
            await conn.execute(
                text(
                    "INSERT INTO documents (tenant_id, source, title, metadata, content_hash) "
                    "VALUES (:t, :s, :title, CAST(:m AS jsonb), :h)"
                ),
                {"t": tenant_id, "s": source, "title": title, "m": json.dumps(meta), "h": source},
            )


async def test_sql_metadata_tool_is_tenant_scoped_and_read_only(
    clients: Clients, tenant: str
) -> None:
    tenant_id = await ensure_tenant(clients.engine, tenant)
    other_id = await ensure_tenant(clients.engine, f"{tenant}-other")
    await _seed_documents(clients, tenant_id)
    await _seed_documents(clients, other_id)
    tools = AgentToolActivities(engine=clients.engine)
    env = ActivityEnvironment()

    def call(**args: object) -> ToolRequest:
        return ToolRequest(tenant=tenant, tenant_id=str(tenant_id), tool="sql_metadata", args=args)

    listed = await env.run(tools.sql_metadata, call(department="HR"))
    assert listed.ok and listed.data == {"count": 2}
    assert "Hiring guide" in listed.text and "Q1 report" not in listed.text

    counted = await env.run(tools.sql_metadata, call(count_by="department"))
    assert counted.data["counts"] == {"HR": 2, "Finance": 1}  # the other tenant's 3 are unseen
    by_month = await env.run(tools.sql_metadata, call(count_by="month", date_from="2024-04-01"))
    assert by_month.data["counts"] == {"2024-04": 1, "2024-05": 1}

    # Whatever the model sends is a bound parameter, never SQL.
    injected = await env.run(tools.sql_metadata, call(title_contains="'; DROP TABLE documents;--"))
    assert injected.ok and injected.data == {"count": 0}
    bad = await env.run(tools.sql_metadata, call(sql="SELECT * FROM api_keys"))
    assert not bad.ok and "invalid arguments" in bad.text
    async with clients.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM documents"))).scalar_one() >= 6


@pytest.fixture
def hits() -> list[str]:
    """Paths the local web server was asked for."""
    return []


@pytest.fixture
def web(hits: list[str]) -> Iterator[str]:
    """A local web server: `/page` answers text, `/redirect` redirects, others 404."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def do_GET(self) -> None:  # noqa: N802
            hits.append(self.path)
            if self.path == "/page":
                body = b"Refunds are possible within 30 days."
                self.send_response(200)
                self.send_header("content-type", "text/plain")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif self.path == "/redirect":
                self.send_response(302)
                self.send_header("location", "http://evil.example.com/")
                self.send_header("content-length", "0")
                self.end_headers()
            else:
                self.send_response(404)
                self.send_header("content-length", "0")
                self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_http_get_tool_fetches_only_allowed_hosts(clients: Clients, web: str) -> None:
    tools = AgentToolActivities(engine=clients.engine)
    env = ActivityEnvironment()
    # The test server is on loopback: allowed only because it is marked private.
    config = ToolConfig(http_allow_hosts=[web], http_private_hosts=[web])

    def call(url: str, cfg: ToolConfig = config) -> ToolRequest:
        return ToolRequest(
            tenant="t", tenant_id=str(uuid.uuid4()), tool="http_get", args={"url": url}, config=cfg
        )

    page = await env.run(tools.http_get, call(f"http://{web}/page"))
    assert page.ok and "30 days" in page.text
    refused = await env.run(tools.http_get, call(f"http://{web}/page", ToolConfig()))
    assert not refused.ok and "not allowed" in refused.text
    redirect = await env.run(tools.http_get, call(f"http://{web}/redirect"))
    assert not redirect.ok and "not followed" in redirect.text
    missing = await env.run(tools.http_get, call(f"http://{web}/nope"))
    assert not missing.ok and "404" in missing.text
    public_only = await env.run(
        tools.http_get, call(f"http://{web}/page", ToolConfig(http_allow_hosts=[web]))
    )
    assert not public_only.ok and "loopback or private network" in public_only.text


# Each URL's host is put on the allow-list (the worst case: an operator's mistake or a model
# that talked its way onto it); the tool must still refuse by the address it resolves to.
SSRF_ATTEMPTS = [
    ("http://localhost:{port}/page", "loopback or private network"),
    ("http://127.0.0.1:{port}/page", "loopback or private network"),
    ("http://127.1:{port}/page", "loopback or private network"),
    ("http://2130706433:{port}/page", "loopback or private network"),
    ("http://0x7f000001:{port}/page", "loopback or private network"),
    ("http://0177.0.0.1:{port}/page", "loopback or private network"),
    ("http://[::1]:{port}/page", "loopback or private network"),
    ("http://[::ffff:127.0.0.1]:{port}/page", "loopback or private network"),
    ("http://10.0.0.5/", "loopback or private network"),
    ("http://192.168.1.1/", "loopback or private network"),
    ("http://100.64.0.1/", "loopback or private network"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fd00:ec2::254]/latest/meta-data/", "link-local"),
    ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata host"),
    ("http://0.0.0.0:{port}/page", "not a unicast address"),
    ("http://224.0.0.1/", "not a unicast address"),
]


@pytest.mark.parametrize(("template", "reason"), SSRF_ATTEMPTS)
async def test_http_get_never_reaches_internal_addresses(
    clients: Clients, web: str, hits: list[str], template: str, reason: str
) -> None:
    port = web.rsplit(":", 1)[1]
    url = template.format(port=port)
    host = url.split("//", 1)[1].split("/", 1)[0]
    bare = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    tools = AgentToolActivities(engine=clients.engine)
    config = ToolConfig(http_allow_hosts=[host, bare.strip("[]"), bare])
    request = ToolRequest(
        tenant="t", tenant_id=str(uuid.uuid4()), tool="http_get", args={"url": url}, config=config
    )
    before = len(hits)

    out = await ActivityEnvironment().run(tools.http_get, request)

    assert not out.ok and "refused" in out.text and reason in out.text, out.text
    assert len(hits) == before  # the local server never saw a request


async def test_calculator_tool_reports_errors_to_the_model(clients: Clients) -> None:
    tools = AgentToolActivities(engine=clients.engine)
    env = ActivityEnvironment()
    request = ToolRequest(tenant="t", tenant_id=str(uuid.uuid4()), tool="calculator", args={})
    ok = await env.run(tools.calculator, request.model_copy(update={"args": {"expression": "6*7"}}))
    assert ok.ok and ok.text == "6*7 = 42"
    wrong = await env.run(
        tools.calculator, request.model_copy(update={"args": {"expression": "1/0"}})
    )
    assert not wrong.ok and "division by zero" in wrong.text
    missing = await env.run(tools.calculator, request)
    assert not missing.ok and "expression" in missing.text


SQL_ATTEMPTS = [
    {"department": "HR' OR '1'='1"},
    {"title_contains": "x%' OR tenant_id IS NOT NULL --"},
    {"doc_type": "policy'; SELECT pg_advisory_lock(42); --"},
    {"title_contains": "') OR pg_sleep(30) IS NULL --"},
    {"department": "HR'; UPDATE documents SET title = 'owned'; --"},
    {"title_contains": "'; COPY documents TO PROGRAM 'id'; --"},
]


@pytest.mark.parametrize("args", SQL_ATTEMPTS)
async def test_sql_metadata_treats_hostile_arguments_as_data(
    clients: Clients, tenant: str, args: dict[str, str]
) -> None:
    tenant_id = await ensure_tenant(clients.engine, tenant)
    other_id = await ensure_tenant(clients.engine, f"{tenant}-other")
    await _seed_documents(clients, tenant_id)
    await _seed_documents(clients, other_id)
    tools = AgentToolActivities(engine=clients.engine)
    request = ToolRequest(tenant=tenant, tenant_id=str(tenant_id), tool="sql_metadata", args=args)

    out = await ActivityEnvironment().run(tools.sql_metadata, request)

    assert out.ok and out.data == {"count": 0}  # matched as text: nothing has that value
    async with clients.engine.connect() as conn:
        titles = (
            await conn.execute(
                text("SELECT count(*) FROM documents WHERE title = 'owned'"),
            )
        ).scalar_one()
        locks = (
            await conn.execute(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"))
        ).scalar_one()
    assert titles == 0 and locks == 0
