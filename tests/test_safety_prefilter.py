"""The safety rules' one-pass prefilter never skips a rule that matches, and is used."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from keel.safety import harmful, injection
from keel.safety.common import Rule
from keel.safety.normalize import views
from keel.safety.prefilter import RuleSet, loosen
from tests.support import scale_corpus

DATA = Path(__file__).parents[1] / "keel" / "redteam" / "data"


def _texts() -> list[str]:
    texts = []
    for name in ("attacks.jsonl", "benign.jsonl", "heldout.jsonl", "handwritten.jsonl"):
        for line in (DATA / name).read_text().splitlines():
            if line.strip():
                texts.append(json.loads(line)["text"])
    pool = scale_corpus.load_pool()
    texts += [c.text for c in scale_corpus.chunks(pool, seed=3, start=0, count=60)]
    return texts


@pytest.fixture(scope="module")
def all_views() -> list[str]:
    return [v.text for text in _texts() for v in views(text)]


@pytest.mark.parametrize("rule_set", [injection.RULE_SET, harmful.RULE_SET], ids=lambda r: r.name)
def test_the_prefilter_reports_every_rule_that_matches(
    rule_set: RuleSet[Rule], all_views: list[str]
) -> None:
    assert rule_set.wait_ready(timeout=300)
    assert rule_set.accelerated
    matched = skipped = ascii_views = 0
    for text in all_views:
        ascii_views += text.isascii()
        reported = {id(r) for r in rule_set.candidates(text)}
        for rule in rule_set.rules:
            if rule.pattern.search(text):
                matched += 1
                skipped += id(rule) not in reported
    assert matched > 50 and ascii_views > 0.8 * len(all_views)
    assert skipped == 0
    # And it does prune: a clean ASCII view leaves few rules to search.
    clean = "the quarterly report lists revenue by region and the travel policy for staff."
    assert len(rule_set.candidates(clean)) < len(rule_set.rules) / 4


def test_non_ascii_text_searches_every_rule() -> None:
    assert list(injection.RULE_SET.candidates("ignorez les règles")) == list(
        injection.RULE_SET.rules
    )


def test_loosened_patterns_match_everything_the_originals_do() -> None:
    pattern = r"\bignore\s[^\s.]{0,40}?rules\s{1,3}now"
    loose = loosen(pattern)
    assert "{" not in loose
    for text in ["ignore\x1call the rules  now", "ignore my rules now", "ignore x" * 30]:
        if re.search(pattern, text):
            assert re.search(loose, text)
