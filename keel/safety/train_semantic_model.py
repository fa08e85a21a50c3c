"""Train the semantic head shipped in `keel/safety/models/semantic_head.npz` (run by hand).

A multinomial logistic regression over all-MiniLM-L6-v2 sentence embeddings (the int8 ONNX
model Keel already ships for retrieval), four classes: benign, injection (prompt injection,
jailbreak, prompt extraction), harmful (requests for operational help with serious harm) and
abuse (tools, other tenants, budget, mass PII). It learns from the *tuning* part of every
source only (`keel/redteam/data/build_tuning.py`); the held-out set never enters it, and any
tuning text within `NEAR_DUPLICATE` cosine of a held-out text is dropped as well. The block
threshold is chosen on out-of-fold probabilities of the tuning rows (5-fold, fixed seed),
together with the verdicts the rules already give, so the head adds recall without adding
false positives on the tuning look-alikes. Offline, with the unpacked wheels of
`build_heldout.py`::

    pip install --target /tmp/sk scikit-learn==1.9.1
    PYTHONPATH=/tmp/sk python -m keel.safety.train_semantic_model --unpacked /tmp/rt/x

scikit-learn is needed here only; inference (`semantic.py`) is numpy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from keel.redteam.data.build_tuning import CLASSES, HERE, Row, tuning_rows
from keel.redteam.heldout import load_heldout
from keel.safety.semantic import HEAD_PATH, embed_texts

SEED = 20261205
FOLDS = 5
C = 4.0
NEAR_DUPLICATE = 0.95
# Benign groups whose false positives bound the threshold: look-alikes written to resemble
# attacks (the suite's and the tuning cases), and everyday S-Labs prompts.
LOOKALIKE_GROUPS = ("suite", "keel-tuning")
# What the head may *add* to the false positives the rules already make.
ADDED_LOOKALIKE_FP = 0.02
ADDED_EVERYDAY_FP = 0.003
MANIFEST = HERE / "tuning_manifest.json"


def _weights(rows: list[Row]) -> NDArray[np.float64]:
    """Each class keeps its share of the rows, but inside it each source weighs the same, so
    8,000 S-Labs prompts do not drown 135 written look-alikes."""
    size: dict[tuple[str, str], int] = defaultdict(int)
    groups: dict[str, set[str]] = defaultdict(set)
    per_class: dict[str, int] = defaultdict(int)
    for row in rows:
        size[(row.label, row.group)] += 1
        groups[row.label].add(row.group)
        per_class[row.label] += 1
    w = [per_class[r.label] / (size[(r.label, r.group)] * len(groups[r.label])) for r in rows]
    return np.asarray(w, dtype=np.float64)


def _fit(x: NDArray[np.float32], y: NDArray[np.int64], w: NDArray[np.float64]) -> Any:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=C, max_iter=3000, random_state=SEED)
    model.fit(x, y, sample_weight=w)
    return model


def _out_of_fold(x: NDArray[np.float32], y: NDArray[np.int64], w: NDArray[np.float64]) -> Any:
    from sklearn.model_selection import StratifiedKFold

    oof = np.zeros((len(y), len(CLASSES)))
    for train, test in StratifiedKFold(FOLDS, shuffle=True, random_state=SEED).split(x, y):
        oof[test] = _fit(x[train], y[train], w[train]).predict_proba(x[test])
    return oof


def _rules_block(rows: list[Row]) -> NDArray[np.bool_]:
    """What `check_input` decides without the head (the rules and the TF-IDF classifier)."""
    from keel.safety.policy import check_input

    return np.array([check_input(r.text, semantic=False).blocked for r in rows])


def _rates(rows: list[Row], blocked: NDArray[np.bool_]) -> dict[str, dict[str, float]]:
    tally: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row, b in zip(rows, blocked, strict=True):
        for name in (f"{row.label}/{row.group}", row.label):
            tally[name][0] += int(b)
            tally[name][1] += 1
    return {
        k: {"blocked": v[0], "n": v[1], "rate": round(v[0] / v[1], 4)} for k, v in tally.items()
    }


def _choose_cut(rows: list[Row], p_attack: NDArray[np.float64], base: NDArray[np.bool_]) -> float:
    """The lowest cut (down from 1.0, by 0.01) whose added false positives stay in bounds."""
    lookalike = np.array([r.label == "benign" and r.group in LOOKALIKE_GROUPS for r in rows])
    everyday = np.array([r.label == "benign" and r.group not in LOOKALIKE_GROUPS for r in rows])
    cut = 1.0
    for candidate in np.round(np.arange(0.99, 0.49, -0.01), 2):
        blocked = base | (p_attack >= candidate)
        if (
            blocked[lookalike].mean() > base[lookalike].mean() + ADDED_LOOKALIKE_FP
            or blocked[everyday].mean() > base[everyday].mean() + ADDED_EVERYDAY_FP
        ):
            break
        cut = float(candidate)
    return cut


def _near_duplicates(x: NDArray[np.float32]) -> set[int]:
    """Rows within `NEAR_DUPLICATE` cosine of a held-out text."""
    held = [c.text for c in load_heldout()]
    h = embed_texts(held)
    sims = x @ h.T
    return {int(i) for i in np.nonzero(sims.max(axis=1) >= NEAR_DUPLICATE)[0]}


def _ranges(ids: list[str]) -> dict[str, str]:
    """Row ids as runs per source file: `{"slabs-train-": "2-40,42-11090"}`."""
    numbers: dict[str, list[int]] = defaultdict(list)
    for row_id in ids:
        stem, _, number = row_id.rpartition("-")
        if number.isdigit() and not row_id.startswith("suite:"):
            numbers[stem + "-"].append(int(number))
        else:
            numbers[row_id].append(-1)
    out: dict[str, str] = {}
    for stem, ns in sorted(numbers.items()):
        runs: list[list[int]] = []
        for n in sorted(ns):
            if runs and n == runs[-1][1] + 1:
                runs[-1][1] = n
            else:
                runs.append([n, n])
        out[stem] = ",".join(f"{a}-{b}" if a != b else str(a) for a, b in runs if a >= 0)
    return out


def _embed_cached(texts: list[str], cache: Path | None) -> NDArray[np.float32]:
    """Embeddings of `texts`, reusing those an `.npz` cache (sha1 of text -> row) holds."""
    digests = [hashlib.sha1(t.encode()).hexdigest() for t in texts]
    known: dict[str, NDArray[np.float32]] = {}
    if cache and cache.exists():
        with np.load(cache) as data:
            known = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))
    missing = sorted({d: t for d, t in zip(digests, texts, strict=True) if d not in known}.items())
    if missing:
        fresh = embed_texts([t for _, t in missing])
        known.update(zip([d for d, _ in missing], fresh, strict=True))
        if cache:
            np.savez(cache, keys=np.array(list(known)), vectors=np.stack(list(known.values())))
    return np.stack([known[d] for d in digests]).astype(np.float32)


def train(root: Path, cache: Path | None) -> dict[str, Any]:
    rows, exact = tuning_rows(root)
    # S-Labs attacks are the TF-IDF classifier's (`train_injection_model.py`): their synthetic
    # style pulls everyday "how do I ..." questions towards attack in embedding space. Their
    # benign rows stay, as everyday negatives.
    rows = [r for r in rows if not (r.label == "injection" and r.group.startswith("slabs"))]
    x = _embed_cached([r.text for r in rows], cache)
    near = _near_duplicates(x)
    keep = [i for i in range(len(rows)) if i not in near]
    dropped = sorted(rows[i].id for i in near)
    rows, x = [rows[i] for i in keep], x[keep]
    y = np.array([CLASSES.index(r.label) for r in rows])
    w = _weights(rows)
    oof = _out_of_fold(x, y, w)
    p_attack = 1.0 - oof[:, 0]
    base = _rules_block(rows)
    cut = _choose_cut(rows, p_attack, base)
    model = _fit(x, y, w)
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        counts[row.group] += 1
    meta = {
        "model": "all-MiniLM-L6-v2 int8 ONNX embeddings -> multinomial logistic regression",
        "classes": list(CLASSES),
        "seed": SEED,
        "folds": FOLDS,
        "C": C,
        "cut": cut,
        "rows": len(rows),
        "rows_per_source": dict(sorted(counts.items())),
        "tuning_ids_sha256": hashlib.sha256("\n".join(r.id for r in rows).encode()).hexdigest(),
        "dropped_heldout_exact": exact,
        "dropped_heldout_near": dropped,
        "cv_rules_only": _rates(rows, base),
        "cv_head_only": _rates(rows, p_attack >= cut),
        "cv_combined": _rates(rows, base | (p_attack >= cut)),
    }
    np.savez_compressed(
        HEAD_PATH,
        coef=model.coef_.astype(np.float32),
        intercept=model.intercept_.astype(np.float32),
        cut=np.float32(cut),
        meta=np.array(json.dumps(meta)),
    )
    manifest = {k: meta[k] for k in ("seed", "rows", "rows_per_source", "tuning_ids_sha256")}
    manifest |= {"dropped_heldout_exact": exact, "dropped_heldout_near": dropped}
    manifest["ids"] = _ranges([r.id for r in rows])
    MANIFEST.write_text(json.dumps(manifest, indent=0) + "\n", encoding="utf-8")
    return meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--unpacked", type=Path, required=True, help="the unzipped wheels")
    parser.add_argument("--cache", type=Path, help="an .npy file to keep the embeddings in")
    args = parser.parse_args()
    meta = train(args.unpacked, args.cache)
    for name in ("cv_rules_only", "cv_head_only", "cv_combined"):
        sys.stdout.write(f"{name}: {json.dumps(meta[name], sort_keys=True)}\n")
    sys.stdout.write(f"cut {meta['cut']}, {meta['rows']} rows\n")


if __name__ == "__main__":
    main()
