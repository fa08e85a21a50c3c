"""The ingestion API: uploads in parts, server-side paths under the root, tenants, deletes."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from temporalio.worker import Worker

from keel.clients import Clients
from keel.settings import Settings
from tests.conftest import Caller
from tests.test_ingest import ingest, rows, scalar, tenant_id

pytestmark = pytest.mark.timeout(120)


async def test_paths_are_refused_without_an_ingest_root(
    api: httpx.AsyncClient, caller: Caller, settings: Settings
) -> None:
    settings.ingest_root = None
    response = await api.post("/v1/ingest-jobs", data={"paths": ["docs"]}, headers=caller.headers)
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "PathsDisabled"
    assert "KEEL_INGEST_ROOT" in response.json()["error"]["message"]


async def test_server_paths_under_the_root_are_ingested_and_others_refused(
    api: httpx.AsyncClient,
    clients: Clients,
    caller: Caller,
    settings: Settings,
    tmp_path: Path,
    workers: list[Worker],
) -> None:
    root = tmp_path / "root"
    (root / "docs" / "sub").mkdir(parents=True)
    (root / "docs" / "a.txt").write_text("Visitors sign in at reception.")
    (root / "docs" / "sub" / "b.md").write_text("# B\n\nThe lab closes at six.")
    (root / "docs" / ".hidden.txt").write_text("not a document")
    (root / "docs" / ".git").mkdir()
    (root / "docs" / ".git" / "config.txt").write_text("not a document")
    (tmp_path / "secret.txt").write_text("outside the root")
    os.symlink(tmp_path / "secret.txt", root / "docs" / "link.txt")
    settings.ingest_root = root

    result = await ingest(api, clients, caller, {}, paths=["docs"])
    assert (result.files_total, result.documents_stored, result.failures) == (2, 2, [])
    tid = await tenant_id(clients, caller)
    sources = await rows(clients, "select source from documents where tenant_id = :t", t=tid)
    assert sorted(r[0] for r in sources) == ["docs/a.txt", "docs/sub/b.md"]

    inside = await ingest(api, clients, caller, {}, paths=[str(root / "docs" / "a.txt")])
    assert (inside.files_total, inside.documents_unchanged) == (1, 1)
    for path, status, kind in [
        ("../secret.txt", 403, "PathOutsideRoot"),
        (str(tmp_path / "secret.txt"), 403, "PathOutsideRoot"),
        ("missing", 404, "NotFound"),
    ]:
        response = await api.post("/v1/ingest-jobs", data={"paths": [path]}, headers=caller.headers)
        assert (response.status_code, response.json()["error"]["type"]) == (status, kind)


async def test_uploads_in_parts_start_one_job_of_the_uploading_tenant(
    api: httpx.AsyncClient,
    clients: Clients,
    caller: Caller,
    other_caller: Caller,
    workers: list[Worker],
) -> None:
    first = await api.post(
        "/v1/ingest-uploads",
        files=[("files", ("a.txt", b"Alpha rule.")), ("files", ("b.txt", b"Beta rule."))],
        headers=caller.headers,
    )
    assert first.status_code == 201, first.text
    job_id = first.json()["job_id"]
    second = await api.post(
        "/v1/ingest-uploads",
        data={"job_id": job_id},
        files=[("files", ("c.txt", b"Gamma rule."))],
        headers=caller.headers,
    )
    assert second.json()["files_total"] == 3
    stolen = await api.post(
        "/v1/ingest-jobs",
        data={"job_id": job_id},
        headers=other_caller.headers,
    )
    assert stolen.status_code == 404
    dup = await api.post(
        "/v1/ingest-jobs",
        data={"job_id": job_id},
        files=[("files", ("a.txt", b"again"))],
        headers=caller.headers,
    )
    assert (dup.status_code, dup.json()["error"]["type"]) == (409, "DuplicateName")

    result = await ingest(
        api, clients, caller, {"d.txt": b"Delta rule."}, job_id=job_id, tenant=caller.tenant
    )
    assert (result.job_id, result.files_total, result.documents_stored) == (job_id, 4, 4)
    assert (await api.get(f"/v1/runs/{job_id}", headers=other_caller.headers)).status_code == 404
    late = await api.post(
        "/v1/ingest-uploads",
        data={"job_id": job_id},
        files=[("files", ("e.txt", b"Epsilon."))],
        headers=caller.headers,
    )
    assert late.status_code == 404  # the job ended; its staging is gone


@pytest.mark.parametrize(
    ("form", "files", "status", "kind"),
    [
        ({"tenant": "someone-else"}, {"a.txt": b"x"}, 403, "TenantMismatch"),
        ({"metadata": "{not json"}, {"a.txt": b"x"}, 422, "InvalidInput"),
        ({"metadata": '{"date": "last week"}'}, {"a.txt": b"x"}, 422, "InvalidInput"),
        ({"overlap_tokens": "300"}, {"a.txt": b"x"}, 422, "InvalidInput"),
        ({}, {"../escape.txt": b"x"}, 422, "InvalidInput"),
        ({"job_id": "ingest-" + "0" * 32}, {"a.txt": b"x"}, 404, "NotFound"),
    ],
)
async def test_bad_job_requests_are_refused_with_a_typed_error(
    api: httpx.AsyncClient,
    caller: Caller,
    form: dict[str, str],
    files: dict[str, bytes],
    status: int,
    kind: str,
) -> None:
    response = await api.post(
        "/v1/ingest-jobs",
        data=form,
        files=[("files", (n, d)) for n, d in files.items()],
        headers=caller.headers,
    )
    assert (response.status_code, response.json()["error"]["type"]) == (status, kind)


async def test_a_job_with_nothing_to_ingest_is_refused(
    api: httpx.AsyncClient, caller: Caller
) -> None:
    response = await api.post(
        "/v1/ingest-jobs", data={"target_tokens": "512"}, headers=caller.headers
    )
    assert (response.status_code, response.json()["error"]["type"]) == (422, "NothingToIngest")


async def test_delete_removes_the_document_and_its_chunks(
    api: httpx.AsyncClient,
    clients: Clients,
    caller: Caller,
    other_caller: Caller,
    workers: list[Worker],
) -> None:
    await ingest(
        api, clients, caller, {"hr/leave.md": b"# Leave\n\nAsk early.", "it.txt": b"Reboot."}
    )
    tid = await tenant_id(clients, caller)
    params = {"source": "hr/leave.md"}
    refused = await api.delete("/v1/documents", params=params, headers=other_caller.headers)
    assert refused.status_code == 404
    deleted = await api.delete("/v1/documents", params=params, headers=caller.headers)
    assert deleted.json() == {"source": "hr/leave.md", "deleted": True}
    assert (
        await scalar(
            clients,
            "select count(*) from chunks c join documents d on d.id = c.document_id "
            "where d.tenant_id = :t and d.source = 'hr/leave.md'",
            t=tid,
        )
        == 0
    )
    assert await scalar(clients, "select count(*) from chunks where tenant_id = :t", t=tid) == 1
    assert (
        await scalar(
            clients,
            "select count(*) from cache_invalidations where tenant_id = :t and reason = 'deleted' "
            "and processed_at is not null",
            t=tid,
        )
        == 1
    )
    again = await api.delete("/v1/documents", params=params, headers=caller.headers)
    assert again.status_code == 404
