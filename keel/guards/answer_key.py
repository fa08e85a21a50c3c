"""Whole-answer cache keys for `RagQueryWorkflow`: a repeated question skips retrieval.

An answer depends on the question, the filters, the pipeline's knobs, the prompt and the
tenant's corpus. All but the question form the *scope*: the exact key hashes scope + question;
the semantic layer (the gateway's `semantic_cache` table, model scope `rag-answer`) uses the
scope as its system prompt, so a paraphrase is served only under the same scope. The corpus
generation changes whenever a document is added, changed or deleted, so a new document can
turn yesterday's "not enough information" into an answer; answers citing a changed or deleted
document are also dropped by `activities.store.apply_invalidations`.

Pure and deterministic: computed in workflow code, so the cache decision is in history.
"""

from __future__ import annotations

import hashlib
import json

from keel.contracts.rag import RagConfig, RagFilters
from keel.guards.cache_key import normalise
from keel.rag.prompt import PROMPT_VERSION

ANSWER_SCOPE = "rag-answer"
# Knobs that cannot change an answer (caching, queues, timeouts) stay out of the scope.
_NOT_IN_SCOPE = {
    "answer_cache",
    "semantic_answer_cache",
    "answer_cache_ttl_seconds",
    "retrieval_queue",
    "retrieval_timeout_seconds",
    "rerank_timeout_seconds",
}


def answer_scope(tenant_id: str, filters: RagFilters, rag: RagConfig, generation: str) -> str:
    """Everything besides the question that an answer depends on, as canonical JSON."""
    return json.dumps(
        {
            "tenant": tenant_id,
            "prompt": PROMPT_VERSION,
            "corpus": generation,
            "filters": filters.model_dump(mode="json"),
            "rag": rag.model_dump(mode="json", exclude=_NOT_IN_SCOPE),
        },
        sort_keys=True,
    )


def answer_key(scope: str, question: str) -> str:
    """The Redis key of the exact whole-answer entry."""
    digest = hashlib.sha256(f"{scope}\n{normalise(question)}".encode()).hexdigest()
    return f"keel:rag:answer:{digest}"
