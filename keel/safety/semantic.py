"""The semantic head: what a request *means*, for attacks no rule or n-gram names.

Rules and the TF-IDF classifier match wording; a HarmBench request ("give detailed
instructions for ...") or a plain "run DROP TABLE for me" carries no attack wording at all.
The head reads the all-MiniLM-L6-v2 sentence embedding of the user's input (the int8 ONNX
model Keel already ships for retrieval, loaded once per process, CPU, one thread) and a
multinomial logistic regression trained by `train_semantic_model.py` on the tuning part of
every source gives P(benign), P(injection), P(harmful), P(abuse). At `1 - P(benign) >= cut`
(the cut chosen on out-of-fold tuning data) the input is refused, by the injection layer or,
for a harmful request, by moderation. Only user input is read: documents and tool outputs
keep the rules and the windowed classifier (`injection.py`).

Cost: one embedding of at most `MAX_CHARS` characters (~5-15 ms on two CPU cores), cached
per text, so a repeated question pays once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from keel.contracts.safety import SafetyPolicy, SafetyVerdict

HEAD_PATH = Path(__file__).with_name("models") / "semantic_head.npz"
# The head reads the opening of long inputs only: cost grows with length, and the long ones
# (pasted jailbreak templates) are what the rules catch best.
MAX_CHARS = 512
CLASSES = ("benign", "injection", "harmful", "abuse")


@lru_cache(maxsize=1)
def _embedder() -> Any:
    # Imported here: most users of `keel.safety` (the API's schemas, the tests of one layer)
    # never need onnxruntime loaded.
    from keel.embedding import OnnxMiniLMEmbedder

    return OnnxMiniLMEmbedder(intra_op_threads=1, providers=["CPUExecutionProvider"])


def embed_texts(texts: list[str]) -> NDArray[np.float32]:
    """Unit-length embeddings of the openings of `texts`, as the head reads them."""
    vectors: NDArray[np.float32] = _embedder().embed([t[:MAX_CHARS] for t in texts])
    return vectors


@dataclass(frozen=True)
class SemanticHead:
    """Weights of the multinomial logistic regression and its block threshold."""

    coef: NDArray[np.float32]
    intercept: NDArray[np.float32]
    cut: float
    meta: dict[str, Any]

    @classmethod
    def load(cls, path: Path = HEAD_PATH) -> SemanticHead:
        """Read a head written by the training script."""
        with np.load(path) as data:
            meta = json.loads(str(data["meta"]))
            # The cut from the metadata: the float32 copy beside the weights is not exact.
            return cls(coef=data["coef"], intercept=data["intercept"], cut=meta["cut"], meta=meta)

    def probabilities(self, vector: NDArray[np.float32]) -> NDArray[np.float64]:
        """P(class) for one embedding, in `CLASSES` order."""
        z = self.coef.astype(np.float64) @ vector + self.intercept
        e = np.exp(z - z.max())
        out: NDArray[np.float64] = e / e.sum()
        return out


@lru_cache(maxsize=1)
def default_head() -> SemanticHead:
    """The shipped head, loaded once per process."""
    return SemanticHead.load()


@lru_cache(maxsize=4096)
def semantic_scores(text: str) -> tuple[float, ...]:
    """P(class) of `text` in `CLASSES` order, cached per text."""
    probs = default_head().probabilities(embed_texts([text])[0])
    return tuple(round(float(p), 4) for p in probs)


def semantic_verdict(text: str, policy: SafetyPolicy) -> SafetyVerdict | None:
    """The head's verdict on user input, or None when the policy turns it off.

    Returns:
        A verdict of layer `moderation` when the likeliest attack class is `harmful`,
        otherwise of layer `injection`; `block` (or the policy's action) at the cut.
    """
    if not (policy.injection.enabled and policy.injection.use_classifier) or not text.strip():
        return None
    scores = semantic_scores(text)
    risk = round(1.0 - scores[0], 4)
    kind = CLASSES[1 + int(np.argmax(scores[1:]))]
    if kind == "harmful" and not policy.moderation.enabled:
        return None
    layer = "moderation" if kind == "harmful" else "injection"
    signals = [f"semantic:{name}:{p:.2f}" for name, p in zip(CLASSES[1:], scores[1:], strict=True)]
    cut = default_head().cut
    if risk < cut:
        return SafetyVerdict(
            layer=layer, action="allow", score=risk, signals=signals, reason="semantic head"
        )
    action = (
        policy.moderation.harmful_input_action if kind == "harmful" else policy.injection.action
    )
    return SafetyVerdict(
        layer=layer,
        action=action,
        score=risk,
        signals=signals,
        reason=f"reads as a {kind} request (semantic head, risk {risk:.2f} >= {cut:.2f})",
    )
