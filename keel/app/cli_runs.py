"""`keel runs`: list and inspect runs, and decide escalations, through the API."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import typer

from keel.app.cli_common import ApiKeyOption, ApiUrlOption, console, fail
from keel.settings import settings

runs_app = typer.Typer(
    help="List and inspect runs, and decide escalations (through the API).", no_args_is_help=True
)


def _runs_call(api_key: str | None, api_url: str | None, call: Any) -> Any:
    """Run `call(client)` against the API; user-facing failures exit with their message."""
    from keel.app.ask import AskError, resolve_key
    from keel.app.runs_client import RunsClient, RunsCliError

    config = settings()
    try:
        key = resolve_key(config, api_key)
    except AskError as exc:
        raise fail(str(exc)) from exc
    url = api_url or f"http://localhost:{config.ports.api}"
    try:
        with httpx.Client(timeout=60) as http:
            return call(RunsClient(http, url, key))
    except RunsCliError as exc:
        raise fail(str(exc)) from exc


@runs_app.command("list")
def runs_list(
    status: Annotated[str | None, typer.Option(help="running, completed, failed, ...")] = None,
    feature: Annotated[str | None, typer.Option(help="e.g. agents, rag, ingest.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 20,
    api_key: ApiKeyOption = None,
    api_url: ApiUrlOption = None,
) -> None:
    """Your runs, newest first."""
    from keel.app.runs_client import render_list

    runs = _runs_call(
        api_key, api_url, lambda c: c.list(status=status, feature=feature, limit=limit)
    )
    render_list(console, runs)


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    api_key: ApiKeyOption = None,
    api_url: ApiUrlOption = None,
) -> None:
    """Status, progress, the pending escalation (question, draft), result and cost."""
    from keel.app.runs_client import render_run

    render_run(console, _runs_call(api_key, api_url, lambda c: c.show(run_id)))


@runs_app.command("watch")
def runs_watch(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    api_key: ApiKeyOption = None,
    api_url: ApiUrlOption = None,
) -> None:
    """Follow a run live: stage changes, progress counts, escalations, the answer's tokens,
    and how it ended (exit 1 unless it completed)."""
    from keel.app.ask import AskError, resolve_key
    from keel.app.run_events import EventsError, follow

    config = settings()
    try:
        key = resolve_key(config, api_key)
    except AskError as exc:
        raise fail(str(exc)) from exc
    url = (api_url or f"http://localhost:{config.ports.api}").rstrip("/")
    shown: dict[str, Any] = {}

    def on_event(kind: str, data: dict[str, Any]) -> None:
        if kind == "token":
            console.print(str(data.get("text", "")), end="", markup=False)
            return
        for field in ("stage", "status", "phase", "files_done", "batches_done", "turns"):
            if field in data and data[field] != shown.get(field):
                shown[field] = data[field]
                console.print(f"[dim]{field}: {data[field]}[/]")
        pending = data.get("pending_escalation")
        if pending and pending.get("id") != shown.get("escalation"):
            shown["escalation"] = pending["id"]
            console.print(f"[yellow]escalation {pending['id']}:[/] {pending.get('question', '')}")

    try:
        with httpx.Client(timeout=httpx.Timeout(10, read=None)) as http:
            final = follow(http, url, run_id, {"Authorization": f"Bearer {key}"}, on_event)
    except (EventsError, httpx.HTTPError) as exc:
        raise fail(f"cannot follow run {run_id}: {exc}") from exc
    console.print()
    console.print(f"run {run_id} {final.get('status')}")
    if final.get("status") != "completed":
        raise typer.Exit(1)


@runs_app.command("approve")
def runs_approve(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    note: Annotated[str, typer.Option(help="Passed to the run and kept in its transcript.")] = "",
    escalation: Annotated[str, typer.Option(help="Only if this escalation is pending.")] = "",
    by: Annotated[str, typer.Option(help="Who decides (default: your user name).")] = "",
    api_key: ApiKeyOption = None,
    api_url: ApiUrlOption = None,
) -> None:
    """Approve the pending escalation: publish the draft, or let the run go on."""
    _decide(run_id, "approve", {"note": note}, escalation, by, api_key, api_url)
    console.print(f"approved {run_id}")


@runs_app.command("reject")
def runs_reject(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    reason: Annotated[str, typer.Option(help="Why; kept in the run's transcript.")] = "",
    escalation: Annotated[str, typer.Option(help="Only if this escalation is pending.")] = "",
    by: Annotated[str, typer.Option(help="Who decides (default: your user name).")] = "",
    api_key: ApiKeyOption = None,
    api_url: ApiUrlOption = None,
) -> None:
    """Reject the pending escalation: the run stops without an answer."""
    _decide(run_id, "reject", {"reason": reason}, escalation, by, api_key, api_url)
    console.print(f"rejected {run_id}")


def _decide(
    run_id: str,
    action: str,
    fields: dict[str, str],
    escalation: str,
    by: str,
    api_key: str | None,
    api_url: str | None,
) -> None:
    """Send a person's decision on the pending escalation (default decider: the user name)."""
    import getpass

    body = {**fields, "escalation_id": escalation, "by": by or getpass.getuser()}
    _runs_call(api_key, api_url, lambda c: c.decide(run_id, action, body))
