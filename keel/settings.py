"""Keel's settings: one `Settings` object read from env vars (prefix `KEEL_`) and `.env`.

Nested groups use a double underscore: `KEEL_PORTS__API=9000`, `KEEL_PRICES__...`.
Secrets are `SecretStr` so they never appear in logs or reprs.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from keel.contracts.agents import AgentSettings
from keel.contracts.guards import CircuitConfig, ModelPrice, RoutingConfig
from keel.contracts.rag import RagConfig


class Ports(BaseModel):
    """Loopback ports of the embedded stack started by `keel up`."""

    temporal: int = 7233
    temporal_ui: int = 8233
    postgres: int = 5433  # 5433, not 5432, so a system PostgreSQL does not collide
    redis: int = 6380  # 6380, not 6379, for the same reason
    api: int = 8000
    local_llm: int = 8081  # llama.cpp server of the optional local model (`keel up --local-llm`)


# The optional local generative model (extra `local-llm`, see `keel/app/local_llm.py`).
LOCAL_LLM_MODEL = "local-qwen2.5-1.5b"


class LocalLlm(BaseModel):
    """`KEEL_LOCAL_LLM__...`: a small instruction-tuned model served by llama.cpp, offline.

    Enabled, `keel up` starts its server and every routing chain tries it just before
    `local-extractive`, so agent roles (planner, critic, tool calls) get a model that can write
    their JSON. Model names that start with `local-` (other than `local-extractive`) are served
    by this provider.
    """

    enabled: bool = False
    # An OpenAI-compatible llama.cpp server already running (`.../v1`); empty: the one
    # `keel up` starts on `ports.local_llm`.
    url: str = ""
    model: str = Field(default=LOCAL_LLM_MODEL, pattern=r"^local-", max_length=60)
    gguf: Path | None = None  # empty: `<data_dir>/models/`, assembled from the extra's parts
    n_ctx: int = Field(default=4096, ge=512)
    threads: int = Field(default=0, ge=0)  # 0: llama.cpp's default (the machine's cores)
    # Below the provider activity's 120 s start-to-close: a slow CPU fails as a timeout.
    timeout_seconds: float = Field(default=110.0, gt=0)


def _default_prices() -> dict[str, ModelPrice]:
    # Public list prices, USD per million tokens. Override with KEEL_PRICES='{"model": {...}}'.
    return {
        "claude-haiku-4-5": ModelPrice(input=1.0, output=5.0, cached_input=0.10, cache_write=1.25),
        "claude-sonnet-4-5": ModelPrice(
            input=3.0, output=15.0, cached_input=0.30, cache_write=3.75
        ),
        "claude-opus-4-1": ModelPrice(
            input=15.0, output=75.0, cached_input=1.50, cache_write=18.75
        ),
        "gpt-4o-mini": ModelPrice(input=0.15, output=0.60, cached_input=0.075),
        "gpt-4o": ModelPrice(input=2.50, output=10.0, cached_input=1.25),
        "local-extractive": ModelPrice(input=0.0, output=0.0, cached_input=0.0),
        LOCAL_LLM_MODEL: ModelPrice(input=0.0, output=0.0, cached_input=0.0),
    }


class Settings(BaseSettings):
    """Every knob Keel reads. Defaults run the embedded stack on one machine with no key."""

    model_config = SettingsConfigDict(
        env_prefix="KEEL_",
        env_file=".env",
        env_nested_delimiter="__",
        extra="ignore",
    )

    data_dir: Path = Path(".keel")
    host: str = "127.0.0.1"
    ports: Ports = Field(default_factory=Ports)

    # Where the services are. Empty means "the embedded stack on `host` and `ports`".
    temporal_address: str = ""
    temporal_namespace: str = "default"
    temporal_ui_url: str = ""
    # SQLite pragmas of the embedded Temporal. WAL with synchronous=normal stays crash-safe for
    # process crashes and cuts a plain activity round trip from ~78 ms to ~29 ms here (fsync per
    # history write is the cost); an OS crash may lose the last moments. `[]` for full fsync.
    temporal_sqlite_pragmas: list[str] = Field(
        default_factory=lambda: ["journal_mode=wal", "synchronous=normal"]
    )
    # Dynamic-config values of the embedded Temporal (`KEY=JSON`), passed as
    # `--dynamic-config-value`. See the README's "Why a workflow step costs what it does".
    temporal_dynamic_config: list[str] = Field(default_factory=list)
    database_url: SecretStr = SecretStr("")
    redis_url: SecretStr = SecretStr("")

    # Workflows and I/O-bound activities run on the CPU queue; embedding and reranking on the
    # GPU queue, so a machine with an accelerator can serve them without hosting the rest.
    task_queue_cpu: str = "keel-cpu"
    task_queue_gpu: str = "keel-gpu"
    log_level: str = "INFO"
    log_json: bool = True

    # API
    max_request_bytes: int = 50 * 1024 * 1024
    dev_tenant: str = "dev"

    # Providers: empty key means the provider is not configured.
    anthropic_api_key: SecretStr = SecretStr("")
    anthropic_base_url: str = ""
    openai_api_key: SecretStr = SecretStr("")
    openai_base_url: str = ""
    prices: dict[str, ModelPrice] = Field(default_factory=_default_prices)
    local_llm: LocalLlm = Field(default_factory=LocalLlm)

    # Gateway
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    circuit: CircuitConfig = Field(default_factory=CircuitConfig)
    # Breakers are entity workflows named keel-circuit-<scope><model>, hosted on the cpu
    # queue; a scope separates deployments (or test runs) that must not share breakers.
    circuit_scope: str = ""
    semantic_cache_threshold: float = 0.95
    semantic_cache: bool = True
    exact_cache: bool = True
    exact_cache_ttl_seconds: int = 86_400
    provider_timeout_seconds: float = 60.0
    # Serve a model call's happy path (a cache hit, or one successful attempt) in the API
    # process, and run a durable `ModelCallWorkflow` only for the rest (api/direct_call.py).
    direct_model_calls: bool = True
    # A worker's Prometheus metrics (spend, cache hits, breaker states are counted where the
    # activities run): served on this port when set (docker-compose sets 9100).
    worker_metrics_port: int | None = None

    # Embeddings: "onnx" (all-MiniLM-L6-v2 int8, CPU/CUDA via onnxruntime, the offline
    # default), "sentence-transformers" (torch; CUDA when present) or "openai" (hosted).
    embedder: str = "onnx"
    # Single-thread model sessions that embed a bulk call's batches side by side (onnx on
    # the CPU only): 0 = one a core; 1 = one session using every core, ~10 % fewer chunks/s
    # on two cores (bare encode 13.59 against 15.19 in a 10,000-chunk bench run) for ~0.2 GB
    # less peak memory (0.45 against 0.63 GB embedding 768 long chunks).
    embed_lanes: int = Field(default=0, ge=0, le=64)

    # Agent teams and document jobs: default team, HTTP allow-list of the `http_get` tool,
    # escalation timeout and its safe default.
    # `KEEL_AGENTS__HTTP_ALLOW_HOSTS='["docs.example.com"]'`, `KEEL_AGENTS__DEFAULT_TEAM=...`
    agents: AgentSettings = Field(default_factory=AgentSettings)

    # Ingestion. Server-side paths in a job must lie under `ingest_root` (the API and the
    # workers check it); None refuses paths, so only uploads can be ingested.
    ingest_root: Path | None = None
    # Larger files fail on their own with a `too_large` error; the job goes on.
    ingest_max_file_bytes: int = 50 * 1024 * 1024

    # RAG pipeline (RagQueryWorkflow): search sizes, fusion weights, reranker, context budget,
    # whole-answer cache. `KEEL_RAG__RERANKER=cross-encoder`, `KEEL_RAG__VECTOR_WEIGHT=0.6`...
    rag: RagConfig = Field(default_factory=RagConfig)

    @property
    def temporal_target(self) -> str:
        return self.temporal_address or f"{self.host}:{self.ports.temporal}"

    @property
    def temporal_ui(self) -> str:
        return self.temporal_ui_url or f"http://localhost:{self.ports.temporal_ui}"

    @property
    def database_dsn(self) -> str:
        """SQLAlchemy URL (postgresql+psycopg://...)."""
        explicit = self.database_url.get_secret_value()
        return explicit or f"postgresql+psycopg://postgres@{self.host}:{self.ports.postgres}/keel"

    @property
    def local_llm_url(self) -> str:
        """Base URL (`.../v1`) of the local model's OpenAI-compatible server."""
        return self.local_llm.url or f"http://{self.host}:{self.ports.local_llm}/v1"

    @property
    def redis_dsn(self) -> str:
        explicit = self.redis_url.get_secret_value()
        return explicit or f"redis://{self.host}:{self.ports.redis}/0"


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
