"""`make bench`: run every benchmark side by side and write bench-results/bench.{json,md}."""

from __future__ import annotations

import asyncio
import json
import platform
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from tests.bench import gateway, ingest, load, rag, scale, step_overhead
from tests.bench.common import Entry, markdown

BENCHMARKS: list[Callable[[], Awaitable[Entry]]] = [
    step_overhead.run,
    gateway.run,
    rag.run,
    ingest.run,
    scale.run,
    load.run,
]
OUT = Path("bench-results")


async def collect(selected: list[str]) -> list[Entry]:
    entries = []
    for bench in BENCHMARKS:
        if selected and not any(s in bench.__module__ for s in selected):
            continue
        sys.stderr.write(f"running {bench.__module__} ...\n")
        entries.append(await bench())
    return entries


def main(selected: list[str]) -> None:
    entries = asyncio.run(collect(selected))
    OUT.mkdir(exist_ok=True)
    meta = {
        "when": datetime.now(UTC).isoformat(),
        "machine": platform.platform(),
        "python": platform.python_version(),
    }
    (OUT / "bench.json").write_text(
        json.dumps({"meta": meta, "entries": [e.as_dict() for e in entries]}, indent=2)
    )
    (OUT / "bench.md").write_text(markdown(entries))
    sys.stdout.write(markdown(entries) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
