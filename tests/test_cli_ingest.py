"""`keel ingest` against a real API process: upload a folder, follow it, report failures."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.worker import Worker

from keel.app.ingest_client import LocalFile, collect, parts
from keel.clients import Clients
from keel.settings import Settings
from tests.conftest import Caller
from tests.support.worker_process import REPO, api_process
from tests.test_ingest import rows, tenant_id

KEEL = str(Path(sys.executable).parent / "keel")
pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def api_url(settings: Settings, tmp_path: Path) -> Iterator[str]:
    """The API as `keel up` runs it (uvicorn, its own clients), on this test's queues."""
    with api_process(settings, tmp_path / "api.log") as url:
        yield url


async def _keel(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [KEEL, *args], capture_output=True, text=True, check=False, cwd=REPO
    )


async def test_ingest_a_folder_and_wait_for_the_report(
    api_url: str, clients: Clients, caller: Caller, tmp_path: Path, workers: list[Worker]
) -> None:
    folder = tmp_path / "handbook"
    (folder / "hr").mkdir(parents=True)
    (folder / "hr" / "leave.md").write_text("# Leave\n\nBook leave two weeks ahead.")
    (folder / "it.txt").write_text("Laptops are replaced every four years.")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\nnot really a pdf")
    (folder / ".DS_Store").write_bytes(b"\x00\x01")
    common = ["--api-url", api_url, "--api-key", caller.key]

    done = await _keel(
        "ingest", str(folder), "--wait", "--tenant", caller.tenant, "--department", "HR", *common
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 documents stored" in done.stdout
    assert "handbook/broken.pdf" in done.stdout and "malformed" in done.stdout
    tid = await tenant_id(clients, caller)
    stored = await rows(
        clients,
        "select source, metadata->>'department' from documents where tenant_id = :t order by 1",
        t=tid,
    )
    assert stored == [("handbook/hr/leave.md", "HR"), ("handbook/it.txt", "HR")]

    refused = await _keel("ingest", str(folder), "--tenant", "someone-else", *common)
    assert refused.returncode == 1
    assert "TenantMismatch" in refused.stderr


def test_folders_are_uploaded_in_parts_under_the_request_limits(tmp_path: Path) -> None:
    (tmp_path / "docs" / ".git").mkdir(parents=True)
    (tmp_path / "docs" / ".git" / "HEAD").write_text("ref")
    for i in range(3):
        (tmp_path / "docs" / f"{i}.txt").write_text("x")
    (tmp_path / "single.md").write_text("y")
    found = collect([tmp_path / "docs", tmp_path / "single.md"])
    assert [f.name for f in found] == ["docs/0.txt", "docs/1.txt", "docs/2.txt", "single.md"]

    many = [LocalFile(f"{i}.txt", tmp_path, 10) for i in range(1201)]
    assert [len(p) for p in parts(many)] == [500, 500, 201]
    big = [LocalFile(f"{i}.pdf", tmp_path, 10 * 1024 * 1024) for i in range(5)]
    assert [len(p) for p in parts(big)] == [2, 2, 1]
