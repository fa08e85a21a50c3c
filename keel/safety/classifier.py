"""The offline prompt-injection classifier: TF-IDF (word 1-2 grams + char 3-5 grams) + logistic
regression, run in plain Python from a small JSON bundle.

The bundle is trained by `keel/safety/train_injection_model.py` (scikit-learn, offline,
on the MIT-licensed S-Labs prompt-injection set); its metadata records the data, the
hyperparameters and the held-out scores. Inference needs no scikit-learn: the vectoriser is
re-implemented here exactly (sublinear tf, smoothed idf, L2 norm per block), which the
training script checks for parity, so the runtime stays dependency-free and loads in ~0.2 s.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

MODEL_PATH = Path(__file__).with_name("models") / "injection_lr.json.gz"

# scikit-learn's defaults, mirrored so that features match the trained vocabulary.
_TOKEN = re.compile(r"(?u)\b\w\w+\b")
_WS = re.compile(r"\s\s+")


def word_ngrams(text: str, low: int, high: int) -> list[str]:
    """Word n-grams as `TfidfVectorizer(analyzer="word")` builds them."""
    tokens = _TOKEN.findall(text.lower())
    grams = list(tokens) if low == 1 else []
    for n in range(max(low, 2), high + 1):
        grams.extend(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return grams


def char_wb_ngrams(text: str, low: int, high: int) -> list[str]:
    """Character n-grams inside word boundaries, as `analyzer="char_wb"` builds them."""
    grams: list[str] = []
    for word in _WS.sub(" ", text.lower()).split():
        padded = f" {word} "
        for n in range(low, high + 1):
            offset = 0
            grams.append(padded[offset : offset + n])
            while offset + n < len(padded):
                offset += 1
                grams.append(padded[offset : offset + n])
            if offset == 0:  # a word shorter than n is counted once, as sklearn does
                break
    return grams


@dataclass(frozen=True)
class _Block:
    vocab: dict[str, int]
    idf: list[float]
    low: int
    high: int
    offset: int

    def features(self, grams: list[str]) -> dict[int, float]:
        return self.weights(Counter(self.vocab[g] for g in grams if g in self.vocab))

    def weights(self, counts: Counter[int]) -> dict[int, float]:
        vector = {k: (1.0 + math.log(c)) * self.idf[k] for k, c in counts.items()}
        norm = math.sqrt(sum(v * v for v in vector.values()))
        return {self.offset + k: v / norm for k, v in vector.items()} if norm else {}


class _CharBlock:
    """The char n-gram block, with each word's known n-grams remembered: a text's grams are
    the sum of its words' (`char_wb` never crosses a word boundary), and words repeat."""

    def __init__(self, block: _Block) -> None:
        self.block = block
        self._ids: dict[str, tuple[int, ...]] = {}

    def features(self, text: str) -> dict[int, float]:
        counts: Counter[int] = Counter()
        for word in text.lower().split():
            ids = self._ids.get(word)
            if ids is None:
                if len(self._ids) > 200_000:
                    self._ids.clear()
                grams = char_wb_ngrams(word, self.block.low, self.block.high)
                vocab = self.block.vocab
                ids = self._ids[word] = tuple(vocab[g] for g in grams if g in vocab)
            counts.update(ids)
        return self.block.weights(counts)


class InjectionClassifier:
    """Probability that a text is a prompt-injection or jailbreak attempt."""

    def __init__(self, bundle: dict[str, Any]) -> None:
        word, char = bundle["word"], bundle["char"]
        self.meta: dict[str, Any] = bundle.get("meta", {})
        self._word = _Block(
            vocab=word["vocab"],
            idf=word["idf"],
            low=word["ngram_range"][0],
            high=word["ngram_range"][1],
            offset=0,
        )
        self._char = _CharBlock(
            _Block(
                vocab=char["vocab"],
                idf=char["idf"],
                low=char["ngram_range"][0],
                high=char["ngram_range"][1],
                offset=len(word["idf"]),
            )
        )
        self._coef: list[float] = bundle["coef"]
        self._intercept = float(bundle["intercept"])

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> InjectionClassifier:
        """Read a bundle written by the training script."""
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            return cls(json.load(handle))

    def probability(self, text: str) -> float:
        """P(injection) for one text (the intercept alone when no feature is known)."""
        low, high = self._word.low, self._word.high
        features = self._word.features(word_ngrams(text, low, high))
        features.update(self._char.features(text))
        z = self._intercept + sum(v * self._coef[k] for k, v in features.items())
        # Clamp so that exp never overflows on a pathological input.
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


@lru_cache(maxsize=1)
def default_classifier() -> InjectionClassifier:
    """The shipped classifier, loaded once per process (workers warm it up at start)."""
    return InjectionClassifier.load()
