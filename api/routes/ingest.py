"""`POST /v1/ingest-jobs`: ingest uploaded files and/or server-side paths as a durable job.

Files are staged in PostgreSQL under the job's id (the workflow id), then IngestWorkflow
starts; `GET /v1/runs/{id}` shows its progress and, at the end, per-file failures.
More files than one request can carry (1,000 parts, `max_request_bytes`) are sent first to
`POST /v1/ingest-uploads`, which stages them under a job id the job then starts with.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.staging import (
    DuplicateName,
    StagedFile,
    drop_job,
    source_name,
    stage_files,
    staged_owner,
    under_root,
)
from api import launch
from api.deps import ClientsDep, PrincipalDep, SettingsDep
from api.errors import ApiError, ErrorResponse
from keel.auth import Principal
from keel.clients import Clients
from keel.contracts.ingest import IngestJob, IngestOptions
from keel.settings import Settings
from workflows.common import run_attributes

router = APIRouter(prefix="/v1", tags=["ingestion"])

FEATURE = "ingest"
MAX_FILES_PER_JOB = 200_000
JobId = Annotated[str | None, Form(pattern=r"^ingest-[0-9a-f]{32}$")]
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing, malformed or unknown API key"},
    403: {"model": ErrorResponse, "description": "Paths refused, or another tenant named"},
    404: {"model": ErrorResponse, "description": "No such path, or no such staged upload"},
    409: {"model": ErrorResponse, "description": "Duplicate file name, or job already started"},
}


class IngestJobStarted(launch.RunStarted):
    """A started ingestion job: poll `result_url` for progress and the per-file report."""

    files: int = Field(description="Files in the job (uploads, paths, earlier uploads).")


class UploadStaged(BaseModel):
    """Files staged for a job that has not started yet."""

    job_id: str = Field(description="Send it as `job_id` to POST /v1/ingest-jobs (or here).")
    files_staged: int
    files_total: int


def new_job_id() -> str:
    return f"ingest-{uuid.uuid4().hex}"


def _job_metadata(raw: str | None) -> dict[str, str]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ApiError(422, "InvalidInput", f"metadata is not JSON: {exc.msg}") from exc
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ApiError(422, "InvalidInput", "metadata must be a JSON object of strings")
    if "date" in value:
        try:
            value["date"] = date.fromisoformat(value["date"]).isoformat()
        except ValueError as exc:
            raise ApiError(422, "InvalidInput", "metadata.date must be YYYY-MM-DD") from exc
    return value


async def _uploads(files: list[UploadFile], max_bytes: int) -> list[StagedFile]:
    staged = []
    for upload in files:
        name = source_name(upload.filename or "")
        if name is None:
            raise ApiError(
                422,
                "InvalidInput",
                f"file name {upload.filename!r} is not a relative path",
                details={"file": upload.filename},
            )
        data = await upload.read()
        # Over the limit: stage only its size, so the job reports it without storing it.
        kept = data if len(data) <= max_bytes else b""
        staged.append(StagedFile(name=name, data=kept, path=None, size=len(data)))
    return staged


def _walk(root: Path, requested: list[str]) -> list[StagedFile]:
    """Files under each requested path (relative to `root`, or absolute inside it)."""
    base = root.resolve()
    found: dict[Path, None] = {}
    for raw in requested:
        try:
            _collect(base, raw, found)
        except (OSError, ValueError) as exc:  # NUL bytes, names too long, unreadable folders
            raise ApiError(
                422, "InvalidInput", f"path {raw[:200]!r} cannot be read: {exc}"
            ) from exc
    return [
        StagedFile(
            name=p.relative_to(base).as_posix(), data=None, path=str(p), size=p.stat().st_size
        )
        for p in found
    ]


def _collect(base: Path, raw: str, found: dict[Path, None]) -> None:
    target = under_root(base / raw, base)
    if target is None:
        raise ApiError(
            403,
            "PathOutsideRoot",
            f"path {raw!r} is outside the ingest root",
            details={"path": raw},
        )
    if not target.exists():
        raise ApiError(404, "NotFound", f"path {raw!r} does not exist", details={"path": raw})
    candidates = sorted(target.rglob("*")) if target.is_dir() else [target]
    for path in candidates:
        relative = path.relative_to(target) if target.is_dir() else Path(path.name)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue  # hidden files and folders (.git, .DS_Store) are not documents
        real = under_root(path, base)
        if real is not None:  # a symlink leading out of the root is skipped
            found[real] = None
        if len(found) > MAX_FILES_PER_JOB:
            raise ApiError(422, "TooManyFiles", f"more than {MAX_FILES_PER_JOB} files")


async def _check_job(clients: Clients, principal: Principal, job_id: str) -> int:
    """Files staged under `job_id` by this tenant; 404 for another tenant's or none."""
    owner = await staged_owner(clients.engine, job_id)
    if owner is None or owner[0] != principal.tenant_id:
        raise ApiError(404, "NotFound", f"no staged upload {job_id!r}", details={"id": job_id})
    try:
        await clients.temporal.get_workflow_handle(job_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return owner[1]
        raise
    raise ApiError(409, "JobStarted", f"job {job_id!r} has already started")


async def _stage(
    clients: Clients, principal: Principal, job_id: str, files: list[StagedFile]
) -> None:
    try:
        await stage_files(clients.engine, tenant_id=principal.tenant_id, job_id=job_id, files=files)
    except DuplicateName as exc:
        raise ApiError(409, "DuplicateName", str(exc)) from exc


@router.post("/ingest-uploads", response_model=UploadStaged, status_code=201, responses=ERRORS)
async def upload_files(
    principal: PrincipalDep,
    clients: ClientsDep,
    config: SettingsDep,
    files: Annotated[list[UploadFile], File(description="Up to 1,000 files per request.")],
    job_id: JobId = None,
) -> UploadStaged:
    """Stage files for a job that starts later (for uploads too big for one request)."""
    earlier = await _check_job(clients, principal, job_id) if job_id else 0
    job_id = job_id or new_job_id()
    staged = await _uploads(files, config.ingest_max_file_bytes)
    await _stage(clients, principal, job_id, staged)
    return UploadStaged(job_id=job_id, files_staged=len(staged), files_total=earlier + len(staged))


@router.post(
    "/ingest-jobs",
    response_model=IngestJobStarted,
    status_code=202,
    responses=ERRORS,
)
async def create_ingest_job(
    principal: PrincipalDep,
    clients: ClientsDep,
    config: SettingsDep,
    files: Annotated[list[UploadFile], File(description="Files to ingest.")] = [],  # noqa: B006
    paths: Annotated[
        list[str], Form(description="Server-side files or folders under the ingest root.")
    ] = [],  # noqa: B006
    job_id: JobId = None,
    metadata: Annotated[
        str | None,
        Form(description='JSON object for every document, e.g. {"department": "HR"}.'),
    ] = None,
    tenant: Annotated[
        str | None, Form(description="Must be the API key's tenant if given.")
    ] = None,
    target_tokens: Annotated[int, Form(ge=16, le=8192)] = 512,
    overlap_tokens: Annotated[int, Form(ge=0)] = 50,
) -> Any:
    """Start ingesting uploads, server-side paths and earlier uploads (`job_id`) as one job."""
    if tenant is not None and tenant != principal.tenant:
        raise ApiError(
            403,
            "TenantMismatch",
            f"this API key acts for tenant {principal.tenant!r}, not {tenant!r}",
        )
    try:
        options = IngestOptions(
            target_tokens=target_tokens,
            overlap_tokens=overlap_tokens,
            max_file_bytes=config.ingest_max_file_bytes,
            embedder=config.embedder,
            metadata=_job_metadata(metadata),
        )
    except ValidationError as exc:
        raise ApiError(422, "InvalidInput", exc.errors()[0]["msg"]) from exc
    if paths and config.ingest_root is None:
        raise ApiError(
            403,
            "PathsDisabled",
            "server-side paths are disabled: the server has no ingest root "
            "(set KEEL_INGEST_ROOT); upload the files instead",
        )
    earlier = await _check_job(clients, principal, job_id) if job_id else 0
    staged = await _uploads(files, config.ingest_max_file_bytes)
    if paths and config.ingest_root is not None:
        staged += await asyncio.to_thread(_walk, config.ingest_root, paths)
    if not staged and not earlier:
        raise ApiError(422, "NothingToIngest", "send files, paths, or the job_id of an upload")
    job_id, fresh = job_id or new_job_id(), job_id is None
    await _stage(clients, principal, job_id, staged)
    try:
        await _start(clients, config, principal, job_id, options)
    except BaseException:
        if fresh:  # nobody else knows this id: do not leave its files behind
            await drop_job(clients.engine, job_id)
        raise
    body = IngestJobStarted(
        **launch.started(config, job_id).model_dump(), files=earlier + len(staged)
    )
    return JSONResponse(body.model_dump(), status_code=202)


async def _start(
    clients: Clients, config: Settings, principal: Principal, job_id: str, options: IngestOptions
) -> None:
    try:
        await clients.temporal.start_workflow(
            "IngestWorkflow",
            IngestJob(
                job_id=job_id,
                tenant=principal.tenant,
                tenant_id=str(principal.tenant_id),
                gpu_queue=config.task_queue_gpu,
                options=options,
            ),
            id=job_id,
            task_queue=config.task_queue_cpu,
            search_attributes=run_attributes(principal.tenant, FEATURE),
            # A job id is started once: its staged files are dropped when it ends.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError as exc:
        raise ApiError(409, "JobStarted", f"job {job_id!r} has already started") from exc
