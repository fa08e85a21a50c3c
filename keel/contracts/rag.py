"""Contracts of the RAG pipeline (`RagQueryWorkflow`): its knobs, its stages' inputs and outputs,
and the answer it returns.

Stages pass chunk ids and scores, never chunk texts: the texts stay in Postgres and are read
by the activity that needs them. The query vector travels as 384 float32 in base64 (~2 KB),
so retrieval never depends on state outside the history. Every model here travels through
workflow history: fields are only ever added, with defaults.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from keel.contracts.gateway import CallContext, GatewayConfig
from keel.contracts.llm import Usage
from keel.contracts.safety import SafetyVerdict

Fusion = Literal["weighted", "rrf"]
KeywordScoring = Literal["bm25", "ts_rank_cd"]
# "rescore": the offline default (exact best-window cosine + corpus BM25 + title match, fused);
# "cross-encoder": a real cross-encoder (ONNX or sentence-transformers); "none": hybrid order.
RerankerKind = Literal["rescore", "cross-encoder", "none"]
IterativeScan = Literal["off", "relaxed_order", "strict_order"]
AnswerCacheLayer = Literal[
    "none", "answer_exact", "answer_semantic", "exact", "semantic", "provider", "stale"
]
AnswerStatus = Literal["answered", "not_enough_information", "blocked", "failed"]


class RagConfig(BaseModel):
    """Pipeline knobs, read from settings (`KEEL_RAG__...`) when a run starts and frozen into
    its input, so a replay never sees a later change."""

    model_config = ConfigDict(frozen=True)

    # Stage 2: vector search over chunk windows (best window per chunk).
    vector_k: int = Field(default=50, ge=1, le=500)
    # 400: recall@10 0.95 at 100k near-duplicate chunks (0.81 at 100) for 26 ms p50 vs 17.
    ef_search: int = Field(default=400, ge=1, le=1000, description="HNSW candidate list size.")
    iterative_scan: IterativeScan = Field(
        default="relaxed_order",
        description="pgvector 0.8: keep scanning the HNSW graph until k rows pass the filters.",
    )
    # Stage 3: keyword search and fusion.
    keyword_k: int = Field(default=50, ge=1, le=500)
    keyword_scoring: KeywordScoring = "bm25"
    fusion: Fusion = "weighted"
    vector_weight: float = Field(default=0.7, ge=0.0, le=1.0)
    keyword_weight: float = Field(default=0.3, ge=0.0, le=1.0)
    rrf_k: int = Field(default=60, ge=1)
    # Stage 4: rerank the fused candidates down to `top_k`.
    reranker: RerankerKind = "rescore"
    rerank_candidates: int = Field(default=50, ge=1, le=500)
    rescore_sentence_candidates: int = Field(
        default=10, ge=0, le=50, description="Candidates whose sentences the rescorer embeds."
    )
    top_k: int = Field(default=5, ge=1, le=50)
    cross_encoder_model: str = Field(
        default="cross-encoder/ms-marco-MiniLM-L-6-v2",
        description="Hub id or local directory (ONNX `model.onnx` + `tokenizer.json`, or a "
        "sentence-transformers model).",
    )
    # Stage 5-6: context and answer.
    context_token_budget: int = Field(default=1800, ge=50)
    answer_max_tokens: int = Field(default=400, ge=16)
    answer_tier: Literal["cheap", "medium", "expensive"] | None = Field(
        default=None, description="None: the gateway routes by complexity."
    )
    answer_model: str = ""
    expand_query: bool = Field(
        default=False, description="Ask the cheap tier for extra search terms (stage 1)."
    )
    # Whole-answer cache, checked before stage 1.
    answer_cache: bool = True
    semantic_answer_cache: bool = True
    answer_cache_ttl_seconds: int = Field(default=3600, gt=0)
    # Where retrieval runs (empty: the gateway's cpu queue) and how long it may take.
    retrieval_queue: str = ""
    retrieval_timeout_seconds: float = Field(default=30.0, gt=0)
    rerank_timeout_seconds: float = Field(default=60.0, gt=0)


class RagFilters(BaseModel):
    """Metadata filters; dates compare with the chunk's `date` metadata (ISO `YYYY-MM-DD`)."""

    model_config = ConfigDict(frozen=True)

    date_from: date | None = None
    date_to: date | None = None
    departments: list[str] = Field(default_factory=list, max_length=20)
    doc_types: list[str] = Field(default_factory=list, max_length=20)

    def is_empty(self) -> bool:
        return not (self.date_from or self.date_to or self.departments or self.doc_types)

    def merged(self, other: RagFilters) -> RagFilters:
        """`self` (explicit request fields) wins field by field over `other` (extracted)."""
        return RagFilters(
            date_from=self.date_from or other.date_from,
            date_to=self.date_to or other.date_to,
            departments=self.departments or other.departments,
            doc_types=self.doc_types or other.doc_types,
        )


class RagQueryRequest(BaseModel):
    """Input of `RagQueryWorkflow`."""

    question: str = Field(min_length=1, max_length=4000)
    filters: RagFilters = Field(default_factory=RagFilters)
    context: CallContext
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    rag: RagConfig = Field(default_factory=RagConfig)


# --- stage contracts ---------------------------------------------------------------------


class TextCheck(BaseModel):
    """Input of the safety checks. Output checks also get the user's input (its own PII may be
    echoed back), the system prompt (must not leak) and the context (grounding)."""

    tenant: str
    tenant_id: str
    text: str
    user_input: str = ""
    context: str = ""
    system: str = ""


class TenantState(BaseModel):
    """What a run needs to know about its tenant, read once before stage 1."""

    corpus_generation: str = Field(description="Changes whenever a document is added/changed.")
    allow_ungrounded: bool = False
    departments: list[str] = Field(default_factory=list)
    doc_types: list[str] = Field(default_factory=list)


class ProcessQueryInput(BaseModel):
    question: str
    filters: RagFilters = Field(default_factory=RagFilters)
    departments: list[str] = Field(default_factory=list)
    doc_types: list[str] = Field(default_factory=list)
    today: date


class ProcessedQuery(BaseModel):
    """Stage 1's output: the text to search with and the filters to apply."""

    normalized: str
    search_text: str
    filters: RagFilters
    extracted: list[str] = Field(default_factory=list, description="Phrases read as filters.")
    expansions: list[str] = Field(default_factory=list)


class EmbedQueryInput(BaseModel):
    text: str
    more_texts: list[str] = Field(
        default_factory=list,
        description="Texts embedded in the same call (the question, for the semantic cache).",
    )


class QueryVector(BaseModel):
    vector_b64: str = Field(description="float32 little-endian, base64; unit length.")
    model: str
    elapsed_ms: float = 0.0
    more_vectors_b64: list[str] = Field(
        default_factory=list, description="The vectors of `more_texts`, in their order."
    )


class Hit(BaseModel):
    """A chunk and its score in one ranked list; fused lists keep both components."""

    chunk_id: int
    score: float
    vector: float | None = None
    keyword: float | None = None


class SearchHits(BaseModel):
    hits: list[Hit] = Field(default_factory=list)
    elapsed_ms: float = 0.0
    note: str = ""


class VectorSearchInput(BaseModel):
    tenant_id: str
    vector_b64: str
    filters: RagFilters = Field(default_factory=RagFilters)
    k: int = 50
    ef_search: int = 100
    iterative_scan: IterativeScan = "relaxed_order"


class KeywordSearchInput(BaseModel):
    tenant_id: str
    text: str
    filters: RagFilters = Field(default_factory=RagFilters)
    k: int = 50
    scoring: KeywordScoring = "bm25"


class FuseInput(BaseModel):
    vector: list[Hit] = Field(default_factory=list)
    keyword: list[Hit] = Field(default_factory=list)
    fusion: Fusion = "weighted"
    vector_weight: float = 0.7
    keyword_weight: float = 0.3
    rrf_k: int = 60
    k: int = 50


class RerankInput(BaseModel):
    tenant_id: str
    question: str
    vector_b64: str = ""
    candidates: list[Hit]
    top_k: int = 5
    reranker: RerankerKind = "rescore"
    model: str = ""
    sentence_candidates: int = 10


class RerankResult(BaseModel):
    hits: list[Hit]
    reranker: str
    elapsed_ms: float = 0.0


class AssembleInput(BaseModel):
    tenant_id: str
    hits: list[Hit]
    token_budget: int = 1800


class SourceRef(BaseModel):
    """One numbered source given to the model: `[Source number]`."""

    number: int
    chunk_id: int
    document_id: str
    title: str = ""
    section: str | None = Field(
        default=None, description='Headings the chunk sits under: "Profiles › strip".'
    )
    date: str | None = None
    department: str | None = None
    doc_type: str | None = None
    tokens: int = 0
    truncated: bool = False


class AssembledContext(BaseModel):
    """Stage 5's output. `block` is the only copy of chunk text a run's history holds (it is
    what the model is sent, bounded by the token budget)."""

    block: str
    sources: list[SourceRef]
    tokens: int
    elapsed_ms: float = 0.0
    quarantined: list[int] = Field(
        default_factory=list,
        description="Chunks withheld from the model: injected instructions and nothing else.",
    )
    neutralised: list[int] = Field(
        default_factory=list,
        description="Chunks shown with the injected instructions they carried removed.",
    )


class Citation(BaseModel):
    source: int
    document_id: str
    chunk_id: int
    title: str = ""


class RagAnswer(BaseModel):
    """What `RagQueryWorkflow` returns (and the answer cache stores)."""

    answer: str
    status: AnswerStatus
    grounded: bool = True
    degraded: bool = False
    notes: list[str] = Field(default_factory=list, description="Degradations, in order.")
    citations: list[Citation] = Field(default_factory=list)
    sources: list[SourceRef] = Field(default_factory=list)
    filters: RagFilters = Field(default_factory=RagFilters)
    cache_layer: AnswerCacheLayer = "none"
    model: str = ""
    provider: str = ""
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    timings_ms: dict[str, float] = Field(default_factory=dict)
    reranker: str = ""
    safety: list[SafetyVerdict] = Field(default_factory=list)
