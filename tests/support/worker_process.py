"""A Keel worker as a separate OS process (`python worker.py --queue ...`), for tests that
kill it and benchmarks that measure its memory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Literal

import httpx
import psutil

from keel.app.processes import free_port
from keel.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def worker_env(settings: Settings) -> dict[str, str]:
    """Environment that points a worker process at `settings`' stack and task queues."""
    env = {
        **os.environ,
        "KEEL_HOST": settings.host,
        "KEEL_PORTS__TEMPORAL": str(settings.ports.temporal),
        "KEEL_PORTS__POSTGRES": str(settings.ports.postgres),
        "KEEL_PORTS__REDIS": str(settings.ports.redis),
        "KEEL_TASK_QUEUE_CPU": settings.task_queue_cpu,
        "KEEL_TASK_QUEUE_GPU": settings.task_queue_gpu,
        "KEEL_CIRCUIT_SCOPE": settings.circuit_scope,
        "KEEL_EMBEDDER": settings.embedder,
        "KEEL_LOG_JSON": "false",
        "KEEL_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    if settings.ingest_root is not None:
        env["KEEL_INGEST_ROOT"] = str(settings.ingest_root)
    # Providers (the test's harness) only when the settings name them.
    for name in ("anthropic", "openai"):
        key = getattr(settings, f"{name}_api_key").get_secret_value()
        if key:
            env[f"KEEL_{name.upper()}_API_KEY"] = key
            env[f"KEEL_{name.upper()}_BASE_URL"] = getattr(settings, f"{name}_base_url")
    env["KEEL_PROVIDER_TIMEOUT_SECONDS"] = str(settings.provider_timeout_seconds)
    return env


class _Child:
    """A child process the tests start, kill (SIGKILL: no shutdown) and stop (SIGTERM, then
    SIGKILL after `stop_seconds`)."""

    process: subprocess.Popen[bytes] | None = None
    stop_seconds: float = 20

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=self.stop_seconds)
            except subprocess.TimeoutExpired:
                self.kill()


class WorkerProcess(_Child):
    """One worker process; `kill()` is SIGKILL: no shutdown, no goodbye to Temporal."""

    def __init__(self, settings: Settings, queue: Literal["cpu", "gpu"], log: Path) -> None:
        self.settings = settings
        self.queue = queue
        self.log = log
        self._out: IO[bytes] | None = None
        self.stop_seconds = 40

    def start(self) -> WorkerProcess:
        self._out = self.log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "worker.py", "--queue", self.queue],
            cwd=REPO,
            env=worker_env(self.settings),
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )
        return self

    def rss(self) -> int:
        """Resident memory of the process now, in bytes (0 once it has exited)."""
        try:
            return int(psutil.Process(self.pid).memory_info().rss)
        except psutil.NoSuchProcess:
            return 0

    def stop(self) -> None:
        super().stop()
        if self._out is not None:
            self._out.close()


class ApiProcess(_Child):
    """The API in its own process, as `keel up` runs it (uvicorn, its own clients); `kill()`
    is SIGKILL. A client in the same process as the server would share its GIL and loop."""

    def __init__(
        self, settings: Settings, log: Path, extra_env: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **worker_env(settings),
            "KEEL_PORTS__API": str(self.port),
            **(extra_env or {}),
        }
        self.log = log

    def start(self, ready_seconds: float = 60) -> ApiProcess:
        """Start it and wait until `/healthz` answers."""
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--factory",
                    "api.main:build",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--log-level",
                    "warning",
                ],
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + ready_seconds
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        return self


@contextmanager
def api_process(
    settings: Settings, log: Path, extra_env: dict[str, str] | None = None
) -> Iterator[str]:
    """An `ApiProcess` started and stopped around the block; yields its base URL."""
    server = ApiProcess(settings, log, extra_env).start()
    try:
        yield server.url
    finally:
        server.stop()
