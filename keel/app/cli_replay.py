"""`keel replay`: the command around `keel.app.replay`."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

from keel.app.cli_common import console, fail
from keel.settings import settings


def replay(
    workflow_id: Annotated[
        str | None, typer.Argument(help="Workflow id of one run to replay (its latest run).")
    ] = None,
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="A specific run of WORKFLOW_ID.")
    ] = None,
    recent: Annotated[
        int, typer.Option("--recent", min=0, help="Replay the last N closed runs of every type.")
    ] = 0,
    query: Annotated[
        str,
        typer.Option(
            "--query", help="Narrow --recent by a visibility query: 'KeelTenant = \"acme\"'."
        ),
    ] = "",
) -> None:
    """Replay recorded runs against the workflow code on disk, before deploying it.

    Exits 0 when every run replays, 1 when any diverges (each divergence told in plain
    words), 2 when the runs cannot be fetched. Run it in CI against production's Temporal
    with the new code checked out: `keel replay --recent 50`.
    """
    from temporalio.service import RPCError

    from keel.app.replay import fetch_recent, fetch_run, replay_histories, workflow_types
    from keel.clients import connect_temporal
    from worker import workflow_classes, workflow_runner

    if (workflow_id is None) == (recent == 0):
        raise fail("give either a WORKFLOW_ID or --recent N", 2)
    config = settings()

    async def _replay() -> list[Any]:
        client = await connect_temporal(config)
        classes = workflow_classes()
        if workflow_id is not None:
            histories = [await fetch_run(client, workflow_id, run_id)]
        else:
            histories = await fetch_recent(client, workflow_types(classes), recent, query)
        return await replay_histories(histories, classes, workflow_runner())

    try:
        outcomes = asyncio.run(_replay())
    except (RPCError, RuntimeError, OSError) as exc:
        raise fail(
            f"cannot fetch runs from Temporal at {config.temporal_target}: {exc}", 2
        ) from exc
    for outcome in outcomes:
        mark = "[green]replays[/]" if outcome.ok else "[bold red]DIVERGES[/]"
        console.print(f"{mark}  {outcome.workflow_type}  {outcome.workflow_id}")
        if not outcome.ok:
            console.print(f"    {outcome.divergence}", markup=False, soft_wrap=True)
    failed = sum(not o.ok for o in outcomes)
    console.print(f"{len(outcomes)} run(s) replayed, {failed} diverged")
    if failed:
        raise typer.Exit(1)
