"""The `keel` command."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import httpx
import typer

from keel.app.cli_common import ApiKeyOption, ApiUrlOption, TenantOption, console, err, fail
from keel.app.cli_quality import eval_cmd, redteam
from keel.app.cli_replay import replay
from keel.app.cli_runs import runs_app
from keel.app.devstack import DevStack
from keel.app.local_llm import local_llm_app
from keel.app.processes import StackError
from keel.settings import Settings, settings

app = typer.Typer(
    help="Keel: durable orchestration for AI agents on Temporal.",
    no_args_is_help=True,
    add_completion=False,
)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(runs_app, name="runs")
app.add_typer(local_llm_app, name="local-llm")


DEV_KEY_FILE = "dev-api-key"


def _child_env(config: Settings) -> dict[str, str]:
    """Settings the children must share with `keel up`, made explicit."""
    return {
        "KEEL_HOST": config.host,
        "KEEL_DATA_DIR": str(config.data_dir.resolve()),
        "KEEL_PORTS__TEMPORAL": str(config.ports.temporal),
        "KEEL_PORTS__TEMPORAL_UI": str(config.ports.temporal_ui),
        "KEEL_PORTS__POSTGRES": str(config.ports.postgres),
        "KEEL_PORTS__REDIS": str(config.ports.redis),
        "KEEL_PORTS__API": str(config.ports.api),
        "PYTHONUNBUFFERED": "1",
    }


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


async def _dev_key(config: Settings) -> str:
    """The local development key, created once and kept in the data folder (mode 600)."""
    from keel.auth import create_key, resolve_key
    from keel.db import make_engine

    path = config.data_dir / DEV_KEY_FILE
    engine = make_engine(config.database_dsn, pool_size=1)
    try:
        if path.exists():
            key = path.read_text().strip()
            if await resolve_key(engine, key) is not None:
                return key
        key = await create_key(engine, config.dev_tenant, name="local development key")
    finally:
        await engine.dispose()
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


async def _ping_workers(config: Settings, within_s: float = 30.0) -> list[str]:
    from keel.clients import connect_temporal
    from keel.contracts.diagnostics import PingInput, PingResult

    client = await connect_temporal(config)
    result: PingResult = await client.execute_workflow(
        "PingWorkflow",
        PingInput(queues=[config.task_queue_cpu, config.task_queue_gpu]),
        id=f"keel-check-{uuid.uuid4().hex[:12]}",
        task_queue=config.task_queue_cpu,
        execution_timeout=timedelta(seconds=within_s),
        result_type=PingResult,
    )
    return [f"{w.queue}: pid {w.pid} on {w.host} ({w.device})" for w in result.workers]


def _watch(stack: DevStack) -> None:
    """Block until a child exits on its own (Ctrl-C interrupts the sleep)."""
    while True:
        time.sleep(1)
        dead = stack.stopped_children()
        if dead:
            names = ", ".join(s.name for s in dead)
            raise StackError(names, f"exited unexpectedly; see logs in {stack.log_dir}")


@app.command()
def up(
    headless: Annotated[bool, typer.Option(help="Do not serve the Temporal UI.")] = False,
    local_llm: Annotated[
        bool,
        typer.Option(
            "--local-llm",
            help="Also serve the local model for the agent roles (extra `local-llm`; "
            "same as KEEL_LOCAL_LLM__ENABLED=true).",
        ),
    ] = False,
) -> None:
    """Start everything Keel needs, in the foreground: Temporal (+UI), PostgreSQL+pgvector,
    Redis, a cpu and a gpu worker, and the API. Ctrl-C stops it all."""
    from keel.app.local_llm import server_env, start_server
    from keel.db import migrate

    config = settings()
    if local_llm:
        config.local_llm = config.local_llm.model_copy(update={"enabled": True})
    stack = DevStack(config, headless=headless)
    env = {**_child_env(config), **server_env(config)}
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    # Started in the background by a script (`cmd &` in a non-interactive shell, nohup),
    # a process inherits SIGINT as ignored and Python installs no handler: Ctrl-C or
    # `kill -INT` would then never stop the stack.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        console.print(f"[bold]Starting Keel[/] (data in {config.data_dir.resolve()})")
        stack.start()
        console.print("  temporal, postgres, redis: [green]up[/]")
        migrate(config.database_dsn)
        console.print("  database migrated to head")
        key = asyncio.run(_dev_key(config))
        if config.local_llm.enabled and not config.local_llm.url:
            console.print(f"  local model: {start_server(stack, config, env)} [green]up[/]")
        for queue in ("cpu", "gpu"):
            stack.spawn(
                f"worker-{queue}",
                [sys.executable, "-m", "worker", "--queue", queue],
                port=None,
                setting="",
                ready=lambda: True,
                env=env,
            )
        stack.spawn(
            "api",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "api.main:build",
                "--host",
                config.host,
                "--port",
                str(config.ports.api),
                "--no-access-log",
            ],
            port=config.ports.api,
            setting="KEEL_PORTS__API",
            ready=lambda: _http_ok(f"http://{config.host}:{config.ports.api}/healthz"),
            env=env,
        )
        workers = asyncio.run(_ping_workers(config))
        api = f"http://localhost:{config.ports.api}"
        console.print("  workers answering: " + "; ".join(workers))
        console.print()
        if not headless:
            console.print(f"  Temporal UI   {config.temporal_ui}")
        console.print(f"  API           {api}   (docs: {api}/docs)")
        console.print(f"  Temporal      {config.temporal_target}")
        console.print(f"  PostgreSQL    {config.database_dsn}")
        console.print(f"  Redis         {config.redis_dsn}")
        console.print(f"  Logs          {stack.log_dir}")
        console.print(f"  Dev API key   {key}   (tenant '{config.dev_tenant}')")
        if not config.local_llm.enabled:
            console.print("  Agents offline need a model: `make up-local-llm` (1.1 GB, optional)")
        console.print("\n[bold green]Keel is up.[/] Press Ctrl-C to stop.")
        _watch(stack)
    except KeyboardInterrupt:
        console.print("\nStopping Keel...")
    except StackError as exc:
        err.print(f"[bold red]Keel could not start or keep running.[/] {exc}")
        stack.stop()
        raise typer.Exit(1) from exc
    finally:
        stack.stop()
    if not stopping:
        console.print("Stopped. Data kept in " + str(config.data_dir.resolve()))


@app.command()
def check() -> None:
    """Check that Temporal, PostgreSQL, Redis and both workers answer."""
    from keel.clients import Clients
    from keel.health import readiness

    config = settings()

    async def _run() -> bool:
        clients = await Clients.connect(config, lazy=True)
        try:
            report = await readiness(clients)
        finally:
            await clients.close()
        for part in report.parts:
            state = "[green]healthy[/]" if part.healthy else f"[red]down[/] ({part.error})"
            console.print(f"{part.name:10s} {state}")
        if not report.ready:
            return False
        try:
            for line in await _ping_workers(config, within_s=20):
                console.print(f"worker     [green]answering[/] {line}")
        except Exception as exc:  # noqa: BLE001 - report any failure to the user plainly
            console.print(f"worker     [red]no answer[/] ({exc}); is `keel up` running?")
            return False
        return True

    if not asyncio.run(_run()):
        raise typer.Exit(1)


@app.command("migrate")
def migrate_cmd(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    down: Annotated[bool, typer.Option("--down", help="Downgrade to REVISION.")] = False,
) -> None:
    """Apply (or with --down, revert) database migrations."""
    from keel.db import downgrade, migrate

    config = settings()
    (downgrade if down else migrate)(config.database_dsn, revision)
    console.print(f"database at {'base' if revision == 'base' else revision}")


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant the key acts for (created if new).")],
    name: Annotated[str, typer.Option(help="A label for the key.")] = "",
    tokens_per_minute: Annotated[int | None, typer.Option(min=1)] = None,
    tokens_per_day: Annotated[int | None, typer.Option(min=1)] = None,
) -> None:
    """Create an API key and print it once (only its hash is stored)."""
    from keel.auth import InvalidTenantName, create_key
    from keel.db import make_engine

    config = settings()

    async def _run() -> str:
        engine = make_engine(config.database_dsn, pool_size=1)
        try:
            return await create_key(
                engine,
                tenant,
                name=name,
                tokens_per_minute=tokens_per_minute,
                tokens_per_day=tokens_per_day,
            )
        finally:
            await engine.dispose()

    try:
        key = asyncio.run(_run())
    except InvalidTenantName as exc:
        raise fail(str(exc), 2) from exc
    except OSError as exc:
        raise fail(f"cannot reach PostgreSQL ({exc}); is `keel up` running?") from exc
    print(key)
    err.print("Store this key now: Keel keeps only its hash and cannot show it again.")


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    tenant: TenantOption = None,
    show_sources: Annotated[
        bool, typer.Option("--show-sources", help="List every source the model was given.")
    ] = False,
    api_key: ApiKeyOption = None,
    api_url: ApiUrlOption = None,
    department: Annotated[list[str] | None, typer.Option(help="Only this department.")] = None,
    doc_type: Annotated[list[str] | None, typer.Option(help="Only this document type.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Documents dated on/after (YYYY-MM-DD).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Documents dated on/before (YYYY-MM-DD).")
    ] = None,
    wait: Annotated[float, typer.Option(min=1, help="Seconds to wait for the answer.")] = 60.0,
    stream: Annotated[
        bool, typer.Option("--stream/--no-stream", help="Print the answer as it is generated.")
    ] = True,
) -> None:
    """Ask a question of your documents (RAG) through the Keel API."""
    from keel.app.ask import AskError, AskOptions, render
    from keel.app.ask import ask as send

    filters = {
        "departments": department or [],
        "doc_types": doc_type or [],
        "date_from": since,
        "date_to": until,
    }
    options = AskOptions(
        question=question,
        tenant=tenant,
        show_sources=show_sources,
        api_key=api_key,
        api_url=api_url,
        wait_seconds=wait,
        filters={k: v for k, v in filters.items() if v},
        on_token=(lambda piece: console.print(piece, end="", style="dim", markup=False))
        if stream
        else None,
    )
    try:
        answer = send(settings(), options)
    except AskError as exc:
        raise fail(str(exc)) from exc
    if stream and answer.get("cache_layer", "none") == "none":
        console.print()  # after the streamed pieces
    render(console, answer, show_sources=show_sources)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(exists=True, help="Files and folders to ingest.")],
    tenant: TenantOption = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the job's progress until it ends.")
    ] = False,
    api_key: ApiKeyOption = None,
    api_url: ApiUrlOption = None,
    title: Annotated[str | None, typer.Option(help="Title for every document.")] = None,
    date: Annotated[str | None, typer.Option(help="Date for every document (YYYY-MM-DD).")] = None,
    department: Annotated[str | None, typer.Option(help="Department of every document.")] = None,
    doc_type: Annotated[str | None, typer.Option(help="Type of every document.")] = None,
    target_tokens: Annotated[int, typer.Option(min=16, help="Tokens per chunk.")] = 512,
    overlap_tokens: Annotated[int, typer.Option(min=0, help="Overlap between chunks.")] = 50,
) -> None:
    """Ingest files and folders (txt, md, html, pdf, jsonl) as one durable job."""
    from keel.app.ask import AskError, resolve_key
    from keel.app.ingest_client import IngestCliError, IngestRequest, follow, render, submit

    config = settings()
    fields = {"title": title, "date": date, "department": department, "doc_type": doc_type}
    try:
        key = resolve_key(config, api_key)
    except AskError as exc:
        raise fail(str(exc)) from exc
    request = IngestRequest(
        paths=paths,
        api_url=(api_url or f"http://localhost:{config.ports.api}").rstrip("/"),
        api_key=key,
        tenant=tenant,
        metadata={k: v for k, v in fields.items() if v},
        target_tokens=target_tokens,
        overlap_tokens=overlap_tokens,
    )
    try:
        with httpx.Client(timeout=300) as http:
            job_id = submit(http, request, err)
            console.print(f"job {job_id} started; follow it at GET /v1/runs/{job_id}")
            if not wait:
                return
            run = follow(http, request, job_id, err)
    except IngestCliError as exc:
        raise fail(str(exc)) from exc
    except httpx.HTTPError as exc:
        raise fail(
            f"cannot reach the Keel API at {request.api_url} ({exc}); is `keel up` running?"
        ) from exc
    render(console, run)
    if run["status"] != "completed":
        raise typer.Exit(1)


app.command("eval")(eval_cmd)
app.command()(redteam)
app.command()(replay)


def main() -> None:
    """Entry point that also works as `python -m keel.app.cli`."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()


if __name__ == "__main__":
    main()
