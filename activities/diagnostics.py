"""Diagnostic activities: who is this worker, and a trivial step for overhead measurements."""

from __future__ import annotations

import os
import socket

from temporalio import activity

from keel.contracts.diagnostics import WorkerInfo


class DiagnosticsActivities:
    """Answers pings with this worker's identity and compute device."""

    def __init__(self, *, device: str) -> None:
        self.device = device

    @activity.defn(name="ping")
    async def ping(self, queue: str) -> WorkerInfo:
        return WorkerInfo(
            queue=queue, host=socket.gethostname(), pid=os.getpid(), device=self.device
        )


@activity.defn(name="checksum_step")
async def checksum_step(step: int) -> int:
    """The same arithmetic the inline variant does, so only the dispatch cost differs."""
    return step * 31 % 7
