"""The semantic classifier: what a request *means*, for attacks no rule or n-gram names.

Rules and the TF-IDF classifier match wording; a HarmBench request ("give detailed
instructions for ...") or a plain "run DROP TABLE for me" carries no attack wording at all.
The classifier is all-MiniLM-L6-v2 fine-tuned end to end, with a four-way head (benign,
injection, harmful, abuse), on the tuning part of every source and on benign prose of the
kind users paste in (`train_semantic_model.py`, `prose.py`), exported to ONNX and quantised
to int8 (`models/semantic_classifier.onnx`, ~23 MB; its training record and block threshold
are in `models/semantic_classifier.json`). It reads the first `MAX_CHARS` characters of the
user's input, at most `MAX_TOKENS` word pieces, with the WordPiece tokenizer retrieval
already ships. At `1 - P(benign) >= cut` (the cut chosen on tuning rows the classifier never
trained on) the input is refused, by the injection layer or, for a harmful request, by
moderation. A question framed as being *about* harm (protecting from it, recognising or
reporting it, one's own policy on it, a high-level account of it) is refused only at
`FRAMED_CUT`. A second classifier (`models/second_classifier.onnx`: the same recipe, also
trained on independent writers' rows) gives a second opinion both ways: of what the first
lets through it refuses what it reads as abuse (other tenants' data, tools, budget, mass
personal data), and a refusal of the first stands only if it does not read the text as
plainly benign (risk < `VETO`). Only user input is read: documents and tool outputs keep the
rules and the windowed TF-IDF classifier (`injection.py`).

Cost: a forward pass of a six-layer model over at most 128 word pieces on one CPU thread
(~2-5 ms), two where the second classifier is asked, cached per text, so a repeated question
pays once.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from keel.contracts.safety import SafetyPolicy, SafetyVerdict
from keel.safety.injection_rules import FORM_INSTRUCTION

MODELS = Path(__file__).with_name("models")
MODEL_PATH = MODELS / "semantic_classifier.onnx"
META_PATH = MODELS / "semantic_classifier.json"
# A second classifier, trained the same way plus the independent writers' rows
# (`train_semantic_model.py --written`). As a whole it refuses fewer requests for harm than
# the first (the writers' benign rows on sensitive topics pull its harmful class back), so it
# does not replace it; it is asked for a second opinion: where it reads a text the first lets
# through as abuse (other tenants' data, tools, budget, mass personal data) it adds a refusal,
# and where it reads a text the first refuses as plainly benign it lifts the refusal. On the
# tuning side and every written set its refusals hit no benign text and its lifts free no
# attack (README).
SECOND_MODEL_PATH = MODELS / "second_classifier.onnx"
SECOND_META_PATH = MODELS / "second_classifier.json"
# It is asked only where the first classifier's risk reaches this: every text of the tuning
# side and the written sets that it refuses has a risk of 0.015 or more there, and 84 % of
# everyday prompts (tuning fold 0) stay below, so most inputs pay one forward pass.
ABUSE_FLOOR = 0.005
# A refusal by the first classifier is lifted where the second's risk is below this. Every
# attack of tuning fold 0 and the suite that the first refuses alone has a second-classifier
# risk of 0.3 or more, every written request for other tenants' data 0.1 or more; 0.05 and
# 0.1 free the same written look-alikes.
VETO = 0.05
# The classifier reads the opening of long inputs only: cost grows with length, and the long
# ones (pasted jailbreak templates) are what the rules catch best. A request behind a page of
# harmless text is left to the rules (reading later windows too, at any cut that kept pasted
# documents, caught too few such requests to be worth it; see the README).
MAX_CHARS = 512
MAX_TOKENS = 128
CLASSES = ("benign", "injection", "harmful", "abuse")
# A question framed as protecting, recognising, reporting, awareness or one's own policy
# ("how can parents protect teenagers from ...", "for our first-aid poster", "what does our
# policy say about ...", "at a high level") is what users of a document assistant ask about
# harm; the classifier, which learned attacks by their topic, must be surer of those. Chosen
# on the tuning side: on fold 0 it frees none of the benign rows and loses no attack.
FRAMED_CUT = 0.999
_ABOUT_HARM = re.compile(
    r"\b(?:protect(?:s|ing)? (?:\w+ ){0,3}?(?:from|against)|protection (?:from|against)|"
    r"recogni[sz]e|recogni[sz]ing|spot(?:ting)?|(?:warning )?signs? (?:of|that)|how (?:do|can) "
    r"(?:i|we|you|staff|people|parents|employees) (?:tell|know)|report(?:ing)? (?:a|an|the|it|this|"
    r"suspicious|suspected|phishing|scam|fraud)|stay safe|keep (?:\w+ ){1,2}safe|awareness|"
    r"safeguarding|first[- ]aid|for (?:a|an|our|the|my) (?:\w+ )?(?:training|newsletter|leaflet|"
    r"poster|documentary|class|school|assembly|webinar|course|quiz)|(?:our|the company's|"
    r"company) (?:polic(?:y|ies)|handbook|code of conduct)|at a high level|in general terms|"
    r"broadly|(?:what is|what's|explain|describe|tell me about|a short|a brief) (?:the )?history "
    r"of)\b",
    re.IGNORECASE,
)
# A request whose source is the asker's own documents or data ("using my uploaded leases",
# "in the pentest report we uploaded", "search our docs for ...", "a query on our audit_log
# table") or that exercises their rights over their own data
# ("a GDPR export of my own personal data"): the classifier reads the topic ("tenants",
# "exploits", "export") as an attack; these are the documents and data the asker owns. The
# same stricter cut applies; the rules still read every word.
_OWN_SOURCE = re.compile(
    r"\b(?:(?:using|from|in|according to|based on|per) (?:my|our|the) (?:own )?(?:uploaded|"
    r"attached|shared|ingested)\b|(?:we|i) (?:uploaded|attached|ingested|shared with you)\b|"
    r"(?:gdpr|ccpa|data subject|subject access) (?:export|request|access request|rights?)\b|"
    r"(?:export|copy|download) of my (?:own )?(?:personal )?data\b|my own (?:personal )?data\b|"
    r"(?:search|check|scan|look through|go through|query|grep) (?:our|my) (?:own )?(?:[\w-]+ )"
    r"{0,2}?(?:docs|documents|files|wiki|handbook|policies|knowledge base|records|logs?|tables?|"
    r"database)\b|(?:on|against|over|in) (?:our|my) [\w-]+ (?:table|log|logs|database)\b|"
    r"(?:our|my) (?:own )?(?:[\w-]+ ){0,2}?(?:docs|documents|files|folders?|index|invoices|"
    r"contracts|records|spreadsheets?|uploads|uploaded files)\b)",
    re.IGNORECASE,
)
_SEP = "[SEP]"


@dataclass(frozen=True)
class SemanticClassifier:
    """The fine-tuned ONNX classifier, its tokenizer and its block threshold."""

    session: Any
    tokenizer: Any
    cut: float
    meta: dict[str, Any]

    @classmethod
    def load(cls, model: Path = MODEL_PATH, meta: Path | None = META_PATH) -> SemanticClassifier:
        """Open the model on one CPU thread (onnxruntime is imported here: most users of
        `keel.safety` never need it loaded). Without `meta` (training), the cut is 1.0."""
        import onnxruntime as ort

        from keel.embedding import load_tokenizer, minilm_tokenizer_path, session_options

        options = session_options(1, spin=False, stop=False)
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
        record = json.loads(meta.read_text(encoding="utf-8")) if meta else {"cut": 1.0}
        return cls(session, load_tokenizer(minilm_tokenizer_path()), record["cut"], record)

    def token_ids(self, text: str) -> list[int]:
        """Word pieces of the opening of `text`, cut as in training: [CLS] ... [SEP]."""
        ids: list[int] = self.tokenizer.encode(text[:MAX_CHARS]).ids
        if len(ids) > MAX_TOKENS:
            ids = [*ids[: MAX_TOKENS - 1], self.tokenizer.token_to_id(_SEP)]
        return ids

    def scores(self, text: str) -> NDArray[np.float32]:
        """P(class) of one input, read alone (int8 activations are quantised over the whole
        batch, so a text read beside others scores a little differently)."""
        probs: NDArray[np.float32] = self.probabilities([text])[0]
        return probs

    def probabilities(self, texts: list[str]) -> NDArray[np.float32]:
        """(len(texts), 4) P(class) in `CLASSES` order."""
        from keel.embedding import pad_ids

        ids, mask = pad_ids([self.token_ids(t) for t in texts])
        probs: NDArray[np.float32] = self.session.run(
            None, {"input_ids": ids, "attention_mask": mask}
        )[0]
        return probs


@lru_cache(maxsize=1)
def default_classifier() -> SemanticClassifier:
    """The shipped classifier, loaded once per process."""
    return SemanticClassifier.load()


@lru_cache(maxsize=4096)
def semantic_scores(text: str) -> tuple[float, ...]:
    """P(class) of `text` in `CLASSES` order, cached per text."""
    return tuple(round(float(p), 4) for p in default_classifier().scores(text))


@lru_cache(maxsize=1)
def second_classifier() -> SemanticClassifier:
    """The second classifier, loaded once per process on first need."""
    return SemanticClassifier.load(SECOND_MODEL_PATH, SECOND_META_PATH)


@lru_cache(maxsize=4096)
def second_scores(text: str) -> tuple[float, ...]:
    """The second classifier's P(class) of `text` in `CLASSES` order, cached per text."""
    return tuple(round(float(p), 4) for p in second_classifier().scores(text))


def semantic_verdict(text: str, policy: SafetyPolicy) -> SafetyVerdict | None:
    """The classifier's verdict on user input, or None when the policy turns it off.

    Returns:
        A verdict of layer `moderation` when the likeliest attack class is `harmful`,
        otherwise of layer `injection`; `block` (or the policy's action) at the cut.
    """
    if not (policy.injection.enabled and policy.injection.use_classifier) or not text.strip():
        return None
    if FORM_INSTRUCTION.search(text) is not None:
        # An instruction about the form of the answers only (`injection_rules.py`): the
        # classifier learned persistent instructions from attacks and reads these as one.
        return SafetyVerdict(
            layer="injection",
            action="allow",
            score=0.0,
            signals=["semantic:form_instruction"],
            reason="an instruction about the form of the answers",
        )
    scores = semantic_scores(text)
    risk = round(1.0 - scores[0], 4)
    kind = CLASSES[1 + int(np.argmax(scores[1:]))]
    if kind == "harmful" and not policy.moderation.enabled:
        return None
    layer = "moderation" if kind == "harmful" else "injection"
    signals = [f"semantic:{name}:{p:.2f}" for name, p in zip(CLASSES[1:], scores[1:], strict=True)]
    cut = default_classifier().cut
    opening = text[:MAX_CHARS]
    framing = (
        "semantic:framed_as_about"
        if _ABOUT_HARM.search(opening) is not None
        else "semantic:own_source"
        if _OWN_SOURCE.search(opening) is not None
        else None
    )
    if framing is not None:
        signals.append(framing)
        cut = max(cut, FRAMED_CUT)
    if risk < cut:
        abuse = (
            _abuse_verdict(text, policy, framed=framing is not None)
            if risk >= ABUSE_FLOOR
            else None
        )
        return abuse or SafetyVerdict(
            layer=layer, action="allow", score=risk, signals=signals, reason="semantic classifier"
        )
    second = round(1.0 - second_scores(text)[0], 4)
    if second < VETO:
        signals.append(f"semantic:second_opinion_benign:{second:.2f}")
        return SafetyVerdict(
            layer=layer,
            action="allow",
            score=risk,
            signals=signals,
            reason=f"the second classifier reads it as benign (risk {second:.3f} < {VETO})",
        )
    action = (
        policy.moderation.harmful_input_action if kind == "harmful" else policy.injection.action
    )
    return SafetyVerdict(
        layer=layer,
        action=action,
        score=risk,
        signals=signals,
        reason=f"reads as a {kind} request (semantic classifier, risk {risk:.3f} >= {cut:.3f})",
    )


def _abuse_verdict(text: str, policy: SafetyPolicy, *, framed: bool) -> SafetyVerdict | None:
    """A refusal when the second classifier reads `text` as abuse at its cut (the framed cut
    for a framed request, as for the first classifier); None otherwise."""
    scores = second_scores(text)
    risk = round(1.0 - scores[0], 4)
    cut = max(second_classifier().cut, FRAMED_CUT) if framed else second_classifier().cut
    if CLASSES[1 + int(np.argmax(scores[1:]))] != "abuse" or risk < cut:
        return None
    return SafetyVerdict(
        layer="injection",
        action=policy.injection.action,
        score=risk,
        signals=[
            f"semantic_abuse:{name}:{p:.2f}"
            for name, p in zip(CLASSES[1:], scores[1:], strict=True)
        ],
        reason=f"reads as an abuse request (second classifier, risk {risk:.3f} >= {cut:.3f})",
    )
