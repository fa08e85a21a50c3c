"""What the safety layers' own thresholds can buy against benign look-alikes (run by hand).

The held-out look-alikes stay at 6/30 blocked against a target of at most 3 %. Before another
rule or retraining, this measures the three knobs the layers already have, on data the
thresholds may be chosen on, and says what each frees and what it costs:

- `tfidf_cut`: the TF-IDF classifier's own threshold on user input (0.8 ships); below it, it
  only tips a rule over. It is the layer that catches S-Labs-style injections, which the
  fine-tuned classifiers never learned (their training leaves S-Labs attacks out).
- `second_veto`: a refusal by the first fine-tuned classifier alone is lifted where the second
  reads the text as benign at a risk below this (`semantic.VETO`, 0.05 ships).
- `agree_benign`: a refusal by the rules alone (the injection layer, no decoded payload, the
  TF-IDF classifier quiet, below 0.1) is lifted where both fine-tuned classifiers read the
  text as benign (the first below 0.25, the second below the setting). Not shipped.

Measured on: tuning fold 0 (which neither fine-tuned classifier saw), the S-Labs test and
validation attacks of the tuning side (which the TF-IDF classifier never saw), the rest of the
tuning side (seen in training, so a loss there is a lower bound), and the written sets
(`written_lookalikes.jsonl`, `written_cross_tenant.jsonl`); the `final` and `indep3` sets,
never read, are counted and not printed. The held-out set is not read. Same unpacked wheels as
`build_heldout.py`, and scikit-learn for the folds, as `train_semantic_model.py`::

    PYTHONPATH=.:/tmp/sk .venv/bin/python -m keel.redteam.frontier --unpacked /tmp/rt/x
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from keel.contracts.safety import InjectionPolicy, SafetyPolicy
from keel.redteam.data.build_tuning import HERE

TFIDF_CUTS = (0.8, 0.85, 0.88, 0.9, 0.93)
SECOND_VETOES = (0.05, 0.2, 0.3, 0.4, 0.5, 0.7)
AGREE_BENIGN = (0.0, 0.02, 0.05, 0.1)
# `agree_benign` lifts only where the first classifier is this sure and the TF-IDF quiet.
AGREE_FIRST = 0.25
AGREE_TFIDF = 0.1
UNREAD = frozenset({"final", "indep3"})


@dataclass(frozen=True)
class Scored:
    """One text's verdicts and scores, as the knobs need them."""

    group: str  # the report's row: "look-alikes, written (read)", "fold 0 attacks", ...
    attack: bool
    blocked: bool  # by `check_input` as shipped
    rules_blocked: bool  # by `check_input` without the fine-tuned classifiers
    rule_layers: frozenset[str]  # layers whose rule verdicts blocked
    decoded: bool  # a rule matched in a decoded view, or the text carries an encoded payload
    tfidf: float
    first: float  # 1 - P(benign), first fine-tuned classifier
    second: float  # the same, second classifier
    first_refused: bool  # the first classifier's verdict was a refusal (not the abuse read)


def _group(source: str, label: str, fold: int) -> str:
    if source.startswith("written_lookalikes/"):
        unread = source.split("/", 1)[1] in UNREAD
        return "look-alikes, written, never read" if unread else "look-alikes, written (read)"
    if source.startswith("written_cross_tenant/"):
        return "requests for other tenants' data, written"
    if label == "benign":
        kind = "look-alikes" if source in ("suite", "keel-tuning") else "everyday prompts"
        return f"{kind}, tuning fold 0" if fold == 0 else f"{kind}, other tuning rows (seen)"
    if source.startswith("slabs-") and source != "slabs-train":
        return "S-Labs test/validation attacks (unseen by TF-IDF)"
    return "attacks, fold 0" if fold == 0 else "attacks, other tuning rows (seen)"


def score(text: str, group: str, attack: bool, policy: SafetyPolicy | None = None) -> Scored:
    """Run the layers once on `text` (under `policy`, the defaults when None) and keep what
    the knobs read."""
    from keel.safety import check_input, semantic

    policy = policy or SafetyPolicy()
    full = check_input(text, policy)
    rules = check_input(text, policy, semantic=False)
    blocking = [c for c in rules.checks if c.blocked]
    signals = [s for c in rules.checks for s in c.signals]
    tfidf = max((float(s.split(":")[1]) for s in signals if s.startswith("classifier:")), default=0)
    # The first classifier's verdict signals `semantic:<class>:<p>`; the second's abuse
    # refusal signals `semantic_abuse:...`.
    first_refused = any(
        c.blocked and any(s.startswith("semantic:") for s in c.signals) for c in full.checks
    )
    return Scored(
        group=group,
        attack=attack,
        blocked=full.blocked,
        rules_blocked=rules.blocked,
        rule_layers=frozenset(c.layer for c in blocking),
        decoded=any("@" in s or s.startswith("encoded_payload") for s in signals),
        tfidf=tfidf,
        first=1 - semantic.semantic_scores(text)[0],
        second=1 - semantic.second_scores(text)[0],
        first_refused=first_refused,
    )


def second_veto(row: Scored, veto: float) -> bool:
    """Blocked when a refusal of the first classifier alone is lifted below `veto`."""
    if row.blocked and not row.rules_blocked and row.first_refused:
        return row.second >= veto
    return row.blocked


def agree_benign(row: Scored, second: float) -> bool:
    """Blocked when a refusal of the injection rules alone is lifted where both classifiers
    read the text as benign (`second` 0 lifts nothing)."""
    liftable = (
        row.blocked
        and row.rules_blocked
        and row.rule_layers == {"injection"}
        and not row.decoded
        and row.tfidf < AGREE_TFIDF
        and row.first < AGREE_FIRST
        and row.second < second
    )
    return row.blocked and not liftable


def tally(rows: Iterable[Scored], blocked: Callable[[Scored], bool]) -> Counter[str]:
    """Blocked texts per group under one knob setting."""
    return Counter(row.group for row in rows if blocked(row))


def at_tfidf_cut(scored: list[tuple[str, Scored]], cut: float) -> list[Scored]:
    """The rows with the TF-IDF classifier's user-input threshold at `cut`: only refused texts
    it scores between the shipped cut and `cut` can change, so only those are scored again."""
    shipped = InjectionPolicy().classifier_threshold
    policy = SafetyPolicy(injection=InjectionPolicy(classifier_threshold=cut))
    return [
        score(text, row.group, row.attack, policy)
        if row.blocked and shipped <= row.tfidf < cut
        else row
        for text, row in scored
    ]


def tfidf_tally(scored: list[tuple[str, Scored]], cut: float) -> Counter[str]:
    """Blocked texts per group with the TF-IDF classifier's user-input threshold at `cut`."""
    return tally(at_tfidf_cut(scored, cut), lambda r: r.blocked)


def loosest_together(scored: list[tuple[str, Scored]]) -> Counter[str]:
    """Blocked texts per group with every knob at its loosest setting tried: the TF-IDF cut
    raised and both lifts applied."""
    return tally(
        at_tfidf_cut(scored, TFIDF_CUTS[-1]),
        lambda r: second_veto(r, SECOND_VETOES[-1]) and agree_benign(r, AGREE_BENIGN[-1]),
    )


def collect(root: Path) -> list[tuple[str, Scored]]:
    """Every tuning row (fold as `train_semantic_model.py` draws it) and written text, scored."""
    import numpy as np

    from keel.redteam.data.build_tuning import CLASSES, tuning_rows
    from keel.redteam.heldout import load_heldout
    from keel.safety.train_semantic_model import (
        NEAR_DUPLICATE,
        _folds,
        _near_duplicates,
        semantic_rows,
    )

    rows, _ = tuning_rows(root)
    near = _near_duplicates(
        [r.text for r in rows], [c.text for c in load_heldout()], NEAR_DUPLICATE
    )
    rows = [r for i, r in enumerate(rows) if i not in near]
    learned = semantic_rows(rows)
    y = np.array([CLASSES.index(r.label) for r in learned])
    fold = {r.id: int(k) for r, k in zip(learned, _folds(y), strict=True)}
    out = [
        (r.text, score(r.text, _group(r.group, r.label, fold.get(r.id, -1)), r.label != "benign"))
        for r in rows
    ]
    for name, attack in (("written_lookalikes", False), ("written_cross_tenant", True)):
        for line in (HERE / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                case = json.loads(line)
                out.append(
                    (
                        case["text"],
                        score(case["text"], _group(f"{name}/{case['set']}", "", -1), attack),
                    )
                )
    return out


def report(scored: list[tuple[str, Scored]]) -> str:
    """A markdown table per knob: blocked per group at each setting, the shipped one first."""
    rows = [row for _, row in scored]
    totals = Counter(row.group for row in rows)
    groups = sorted(totals)
    tables = []
    knobs: list[tuple[str, tuple[float, ...], Callable[[float], Counter[str]]]] = [
        ("tfidf_cut", TFIDF_CUTS, lambda cut: tfidf_tally(scored, cut)),
        ("second_veto", SECOND_VETOES, lambda v: tally(rows, lambda r: second_veto(r, v))),
        ("agree_benign", AGREE_BENIGN, lambda s: tally(rows, lambda r: agree_benign(r, s))),
    ]
    for name, settings, run in knobs:
        counts = [run(setting) for setting in settings]
        head = f"| blocked | {' | '.join(f'{name} {s}' for s in settings)} |"
        lines = [head, "|---" * (len(settings) + 1) + "|"]
        for group in groups:
            cells = " | ".join(str(c[group]) for c in counts)
            lines.append(f"| {group} ({totals[group]}) | {cells} |")
        tables.append("\n".join(lines))
    shipped, loosest = tally(rows, lambda r: r.blocked), loosest_together(scored)
    lines = ["| blocked | as shipped | every knob at its loosest |", "|---|---|---|"]
    lines += [f"| {g} ({totals[g]}) | {shipped[g]} | {loosest[g]} |" for g in groups]
    tables.append("\n".join(lines))
    return "\n\n".join(tables)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--unpacked", type=Path, required=True, help="the unzipped wheels")
    args = parser.parse_args()
    print(report(collect(args.unpacked)))  # noqa: T201 - a command-line report


if __name__ == "__main__":
    main()
