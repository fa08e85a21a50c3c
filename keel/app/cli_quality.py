"""`keel eval` and `keel redteam`: the retrieval/answer evaluation and the red-team suite."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Annotated, Any

import typer

from keel.app.cli_common import console, err, fail
from keel.settings import Settings, settings


def eval_cmd(
    questions: Annotated[
        int | None, typer.Option(min=1, help="Evaluate the first N questions only.")
    ] = None,
    tenant: Annotated[str, typer.Option(help="Tenant the evaluation corpus is seeded into.")] = (
        "eval"
    ),
    answers: Annotated[
        bool, typer.Option(help="Also score answers with the offline provider.")
    ] = True,
    explicit_filters: Annotated[
        bool, typer.Option(help="Also pass each question's labelled filters as request fields.")
    ] = False,
    json_out: Annotated[
        str | None, typer.Option("--json", help="Also write the full report here.")
    ] = None,
) -> None:
    """Seed the evaluation corpus and report retrieval and answer quality."""
    from keel.app.rag_eval import EvalOptions, run_eval
    from keel.app.rag_eval_report import print_report
    from keel.evaluation.dataset import DatasetError

    config = settings()
    options = EvalOptions(
        tenant=tenant, limit=questions, answers=answers, explicit_filters=explicit_filters
    )
    try:
        report = asyncio.run(run_eval(config, options, progress=err.print))
    except DatasetError as exc:
        raise fail(str(exc), 2) from exc
    except OSError as exc:
        raise fail(f"cannot reach PostgreSQL ({exc}); is `keel up` running?") from exc
    print_report(console, report)
    if json_out:
        from pathlib import Path

        Path(json_out).write_text(report.model_dump_json(indent=2))


def redteam(
    direct: Annotated[
        bool, typer.Option(help="Run the layers in-process instead of through Temporal.")
    ] = False,
    show: Annotated[int, typer.Option(help="How many misses/false positives to list.")] = 20,
    heldout: Annotated[
        bool,
        typer.Option(
            "--heldout", help="Run the frozen held-out set (the figures that count) instead."
        ),
    ] = False,
    min_block_rate: Annotated[
        float | None,
        typer.Option(
            help="Fail below this attack block rate (default: the floor CI gates on, 0.94 for "
            "the suite, 0.92 held out)."
        ),
    ] = None,
    max_false_positive_rate: Annotated[
        float | None,
        typer.Option(
            help="Fail above this benign block rate (default: the ceiling CI gates on, 0.04 "
            "for the suite, 0.041 held out)."
        ),
    ] = None,
) -> None:
    """Run the red-team suite (441 attacks, 274 look-alike benign cases; the rules are tuned
    on it) or, with --heldout, the frozen held-out set (222 attacks, 148 benign) through the
    safety layers, by default as SafetyScreenWorkflow runs on the workers of `keel up`."""
    from keel.redteam import heldout as held
    from keel.redteam import runner

    cases = held.load_heldout() if heldout else runner.load_cases()
    if min_block_rate is None:
        min_block_rate = held.MIN_BLOCK_RATE if heldout else runner.SUITE_MIN_BLOCK_RATE
    if max_false_positive_rate is None:
        max_false_positive_rate = (
            held.MAX_FALSE_POSITIVE_RATE if heldout else runner.SUITE_MAX_FALSE_POSITIVE_RATE
        )
    if direct:
        report = runner.run_suite(cases=cases)
    else:
        verdicts = asyncio.run(_screen(settings(), cases))
        report = runner.run_suite(lambda case: verdicts[case.id], cases=cases)
    console.print(runner.format_report(report, show=show))
    block_rate = report.attacks.blocked / max(1, report.attacks.total)
    fp_rate = report.benign.blocked / max(1, report.benign.total)
    if block_rate < min_block_rate or fp_rate > max_false_positive_rate:
        raise fail(
            f"block rate {block_rate:.1%} (min {min_block_rate:.1%}) or false-positive rate "
            f"{fp_rate:.1%} (max {max_false_positive_rate:.1%}) out of bounds"
        )


async def _screen(config: Settings, cases: list[Any]) -> dict[str, Any]:
    """Verdicts for every case from SafetyScreenWorkflow runs, a few batches at a time."""
    from keel.clients import connect_temporal
    from keel.contracts.redteam import ScreenBatch, ScreenCase, ScreenResult

    client = await connect_temporal(config)
    batches = [cases[i : i + 50] for i in range(0, len(cases), 50)]
    gate = asyncio.Semaphore(4)

    async def one(batch: list[Any]) -> ScreenResult:
        async with gate:
            result: ScreenResult = await client.execute_workflow(
                "SafetyScreenWorkflow",
                ScreenBatch(
                    cases=[ScreenCase(id=c.id, channel=c.channel, text=c.text) for c in batch]
                ),
                id=f"redteam-{uuid.uuid4().hex[:12]}",
                task_queue=config.task_queue_cpu,
                execution_timeout=timedelta(minutes=5),
                result_type=ScreenResult,
            )
            return result

    verdicts: dict[str, Any] = {}
    for result in await asyncio.gather(*(one(b) for b in batches)):
        verdicts.update(result.verdicts)
    return verdicts
