"""Exact-cache keys: SHA-256 of tenant + model scope + the normalised request.

Pure and deterministic, so workflow code computes the key and the decision "cache or not" is
in history. Normalising (Unicode NFKC, collapsed whitespace) makes trivially different
spellings of the same request share an entry; anything that changes meaning (case, words,
parameters) changes the key.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from typing import Any

from keel.contracts.gateway import CacheProbe, CallContext, ModelCall

_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """NFKC + collapsed whitespace + stripped."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def exact_key(tenant: str, model_scope: str, call: ModelCall) -> str:
    """The Redis key of this call's exact-cache entry; never shared across tenants."""
    fields: dict[str, Any] = {
        "tenant": tenant,
        "model": model_scope,
        "system": normalise(call.system),
        "messages": [[m.role, normalise(m.content)] for m in call.messages],
        "max_tokens": call.max_tokens,
        "temperature": call.temperature,
    }
    if call.json_schema is not None:  # only when set, so every other key stays as it was
        fields["json_schema"] = call.json_schema
    canonical = json.dumps(fields, sort_keys=True, ensure_ascii=False)
    return "keel:exact:" + hashlib.sha256(canonical.encode()).hexdigest()


def system_hash(system: str) -> str:
    """Semantic-cache scope: only requests with the same system prompt may share answers."""
    return hashlib.sha256(normalise(system).encode()).hexdigest()[:32]


def query_text(call: ModelCall) -> str:
    """The text the semantic cache embeds: the last user turn (the question)."""
    for message in reversed(call.messages):
        if message.role == "user":
            return normalise(message.content)
    return ""


def cache_probe(
    call: ModelCall,
    context: CallContext,
    scope: str,
    threshold: float,
    *,
    workflow_id: str,
    run_id: str = "",
) -> CacheProbe:
    """The cache lookup of one call (exact key, semantic query), as the workflow and the API's
    direct path both make it."""
    return CacheProbe(
        context=context,
        key=exact_key(context.tenant, scope, call),
        model_scope=scope,
        system=call.system,
        query_text=query_text(call),
        threshold=threshold,
        workflow_id=workflow_id,
        run_id=run_id,
    )
