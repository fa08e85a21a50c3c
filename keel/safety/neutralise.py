"""Indirect injection neutralised, not amputated: remove the instruction, keep the document.

A retrieved chunk or a tool output that carries instructions for the model is untrusted
data. Withholding it whole loses the real content next to the instruction ("Pallets must
carry a GS1-128 label." followed by "IMPORTANT SYSTEM NOTICE: ignore all previous
instructions..."). So the text is screened sentence by sentence (and line by line), the
pieces that carry the instruction are removed, and the rest is screened again as a whole:
if it is clean it is used, marked as having had instructions removed; if it is not (the
instruction is spread too thin to cut out) or nothing is left, the whole text is withheld.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from keel.contracts.safety import SafetyPolicy
from keel.safety.policy import check_document

# Sentence ends and line breaks, kept so the rest of the text keeps its shape.
_BOUNDARY = re.compile(r"((?<=[.!?])\s+|\n+)")


@dataclass(frozen=True)
class Neutralised:
    text: str | None  # None: withhold the whole text
    removed: int  # pieces removed (0 and text unchanged: it was clean)


def neutralise(text: str, policy: SafetyPolicy | None = None) -> Neutralised:
    """The text with its injected instructions removed (see the module docstring)."""
    if not check_document(text, policy).blocked:
        return Neutralised(text, 0)
    parts = _BOUNDARY.split(text)
    kept: list[str] = []
    removed = 0
    for i in range(0, len(parts), 2):
        piece = parts[i]
        gap = parts[i + 1] if i + 1 < len(parts) else ""
        if piece.strip() and check_document(piece, policy).blocked:
            removed += 1
            continue
        kept.append(piece + gap)
    cleaned = "".join(kept).strip()
    if not removed or not cleaned or check_document(cleaned, policy).blocked:
        return Neutralised(None, removed)
    return Neutralised(cleaned, removed)
