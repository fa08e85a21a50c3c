"""Shared pieces of `make bench`: a throwaway stack, timing helpers, the result table."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keel.app.devstack import DevStack
from keel.app.processes import free_port
from keel.settings import Ports, Settings


@dataclass
class Entry:
    """One benchmark: named measurements and the ratios that matter."""

    name: str
    measurements: dict[str, float] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "measurements": self.measurements,
            "ratios": self.ratios,
            "notes": self.notes,
        }


@contextmanager
def bench_stack(
    *,
    pragmas: list[str] | None = None,
    persist: bool = True,
    dynamic_config: list[str] | None = None,
) -> Iterator[Settings]:
    """A fresh embedded stack on free ports, migrated, for one benchmark group."""
    from keel.db import migrate

    data = Path(tempfile.mkdtemp(prefix="keel-bench-"))
    config = Settings(
        data_dir=data,
        ports=Ports(
            temporal=free_port(),
            temporal_ui=free_port(),
            postgres=free_port(),
            redis=free_port(),
            api=free_port(),
        ),
        log_json=False,
        _env_file=None,
    )
    if pragmas is not None:
        config.temporal_sqlite_pragmas = pragmas
    if dynamic_config is not None:
        config.temporal_dynamic_config = dynamic_config
    stack = DevStack(config, headless=True)
    if not persist:
        original = stack._temporal

        def in_memory() -> Any:
            service = original()
            at = service.argv.index("--db-filename")
            del service.argv[at : at + 2]
            return service

        stack._temporal = in_memory  # type: ignore[method-assign]
    stack.start()
    try:
        migrate(config.database_dsn)
        yield config
    finally:
        stack.stop()


async def timed(fn: Callable[[], Awaitable[Any]], *, repeat: int) -> list[float]:
    """Wall-clock seconds of `repeat` sequential awaits of `fn`."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - started)
    return samples


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


def markdown(entries: list[Entry]) -> str:
    lines = ["# Keel benchmarks", ""]
    for entry in entries:
        lines += [f"## {entry.name}", "", "| measurement | value |", "|---|---|"]
        lines += [f"| {k} | {v:g} |" for k, v in entry.measurements.items()]
        if entry.ratios:
            lines += ["", "| ratio | value |", "|---|---|"]
            lines += [f"| {k} | {v:.2f} |" for k, v in entry.ratios.items()]
        lines += [""] + [f"- {n}" for n in entry.notes] + [""]
    return "\n".join(lines)
