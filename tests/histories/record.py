"""Record workflow histories for the replay tests: `python -m tests.histories.record [names]`.

Each `tests/histories/scenario_<name>.py` defines
`async def scenario(clients: Clients, settings: Settings) -> str` that runs one workflow to
completion on a throwaway stack (workers are already running on `settings`' queues) and
returns its workflow id. Its history is saved as `tests/histories/<name>.json`, which
`tests/test_replay.py` replays against the current code: a change that breaks determinism
fails CI instead of failing in production.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from pathlib import Path

from keel.clients import Clients
from tests.bench.common import bench_stack
from worker import build_worker

HERE = Path(__file__).resolve().parent


async def record(names: list[str]) -> None:
    found = sorted(p.stem.removeprefix("scenario_") for p in HERE.glob("scenario_*.py"))
    chosen = [n for n in found if not names or n in names]
    with bench_stack() as settings:
        clients = await Clients.connect(settings)
        try:
            cpu = build_worker(clients.temporal, "cpu", clients, settings)
            gpu = build_worker(clients.temporal, "gpu", clients, settings)
            async with cpu, gpu:
                for name in chosen:
                    module = importlib.import_module(f"tests.histories.scenario_{name}")
                    workflow_id = await module.scenario(clients, settings)
                    handle = clients.temporal.get_workflow_handle(workflow_id)
                    history = await handle.fetch_history()
                    (HERE / f"{name}.json").write_text(history.to_json())
                    sys.stderr.write(f"recorded {name}: {len(history.events)} events\n")
        finally:
            await clients.close()


if __name__ == "__main__":
    asyncio.run(record(sys.argv[1:]))
