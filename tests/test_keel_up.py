"""`keel up` as a user runs it: it starts, answers, stops on Ctrl-C, restarts on its data."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil

from keel.app.processes import free_port

KEEL = str(Path(sys.executable).parent / "keel")
REPO = Path(__file__).resolve().parent.parent


def _start(data: Path, ports: dict[str, int]) -> tuple[subprocess.Popen[str], list[str]]:
    env = {
        **os.environ,
        "KEEL_DATA_DIR": str(data),
        **{f"KEEL_PORTS__{name.upper()}": str(port) for name, port in ports.items()},
        "KEEL_TASK_QUEUE_CPU": "up-test-cpu",
        "KEEL_TASK_QUEUE_GPU": "up-test-gpu",
    }
    process = subprocess.Popen(
        [KEEL, "up"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    deadline = time.monotonic() + 150
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Keel is up." in line:
            # Keep reading: a full pipe (64 KB of logs) would block `keel up` on its next
            # write, and it could then never act on Ctrl-C.
            threading.Thread(target=_drain, args=(process, lines), daemon=True).start()
            return process, lines
    process.kill()
    raise AssertionError("keel up did not come up:\n" + "".join(lines))


def _drain(process: subprocess.Popen[str], lines: list[str]) -> None:
    assert process.stdout is not None
    with process.stdout:  # closed at EOF, when `keel up` has exited
        for line in process.stdout:
            lines.append(line)


def _stop(process: subprocess.Popen[str]) -> list[int]:
    children = [c.pid for c in psutil.Process(process.pid).children(recursive=True)]
    assert len(children) >= 6  # temporal, postgres (+ its backends), redis, 2 workers, api
    process.send_signal(signal.SIGINT)
    process.wait(60)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(psutil.pid_exists(p) for p in children):
        time.sleep(0.2)
    return [p for p in children if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]


def test_keel_up_serves_everything_and_ctrl_c_leaves_nothing(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("temporal", "temporal_ui", "postgres", "redis", "api")}
    process, lines = _start(tmp_path, ports)
    output = "".join(lines)
    try:
        assert f"http://localhost:{ports['temporal_ui']}" in output
        assert f"http://localhost:{ports['api']}" in output
        assert "Dev API key" in output
        ready = httpx.get(f"http://127.0.0.1:{ports['api']}/readyz", timeout=10)
        assert ready.status_code == 200
        assert {p["name"] for p in ready.json()["parts"] if p["healthy"]} == {
            "temporal",
            "postgres",
            "redis",
        }
        assert httpx.get(f"http://127.0.0.1:{ports['temporal_ui']}/", timeout=10).status_code == 200
        key = (tmp_path / "dev-api-key").read_text().strip()
        runs = httpx.get(
            f"http://127.0.0.1:{ports['api']}/v1/runs",
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        assert runs.status_code == 200
    finally:
        leftovers = _stop(process)
    assert leftovers == []

    # A second start reuses the same data: same dev key, still valid.
    again, lines = _start(tmp_path, ports)
    try:
        assert key in "".join(lines)
    finally:
        assert _stop(again) == []
