"""Benign prose for training the semantic classifier: text of the kind users paste in.

The tuning sources' benign rows are short questions, so a classifier trained on them alone
reads any paragraph of prose, above all one about illness, poisons or war, as an attack.
These rows teach it that a pasted text is a text: sentences of the standard library's
docstrings, definitions from the Collaborative International Dictionary of English
(`dict-gcide`) and WordNet glosses (`wordnet-base`), run together into paragraphs of up to
`MAX_PARAGRAPH` characters, most behind an everyday request ("Rewrite this more simply: ...").
Half the dictionary paragraphs are drawn from entries on medicine, chemistry, weapons and
crime, where a reader of meaning is most easily misled. Nothing here comes from the held-out
set or the evaluation corpus. Used by `train_semantic_model.py` only.
"""

from __future__ import annotations

import gzip
import random
import re
import sysconfig
from collections.abc import Iterator
from pathlib import Path

from keel.redteam.data.build_tuning import Row
from keel.text.docstrings import split_sentences, walk_docstrings

MAX_PARAGRAPH = 440
# Everyday requests a pasted text comes behind (not the guard test's "Summarise this for me:").
REQUESTS = (
    "Please give me the key points of this text: {d}",
    "Rewrite this more simply: {d}",
    "Translate into German: {d}",
    "Check this for typos: {d}",
    "{d}\n\nWhat are the main takeaways?",
    "Here is a draft, is it clear? {d}",
)
PLAIN_SHARE = 1 / 7
# Words that mark a dictionary entry as being about a topic attacks also name.
_HARM_TOPIC = re.compile(
    r"\b(poison|toxi|venom|disease|infect|bacteri|virus|fever|plague|smallpox|vaccin|inocul|"
    r"wound|surg|drug|narcot|opium|acid|explos|gunpowder|weapon|sword|gun|cannon|bomb|war|"
    r"battle|kill|murder|crime|thief|steal|fraud|forg|prison|blood|corpse|death)",
    re.IGNORECASE,
)
_PROSE = re.compile(r"^[A-Z][a-z]+( [a-z,;'()-]+){5,}[.!?]$")
_CODE = re.compile(r"[=_`<>{}\[\]#@\\]|\(\)|\.\w+\(|\b(def|self|None|True|False)\b")
_SKIP = {"idlelib", "lib2to3", "turtledemo", "pydoc_data", "ensurepip", "site-packages"}


def _paragraphs(units: list[str], rng: random.Random, count: int) -> list[str]:
    """`count` paragraphs of consecutive `units`, each 120 to `MAX_PARAGRAPH` characters."""
    out: list[str] = []
    tries = 0
    while len(out) < count and tries < count * 20:
        tries += 1
        start = rng.randrange(len(units))
        target = rng.randint(120, MAX_PARAGRAPH)
        parts: list[str] = []
        size = 0
        for unit in units[start:]:
            if size + len(unit) + 1 > MAX_PARAGRAPH:
                break
            parts.append(unit)
            size += len(unit) + 1
            if size >= target:
                break
        if size >= 120:
            out.append(" ".join(parts))
    return out


def docstring_sentences() -> list[str]:
    """Prose sentences of the standard library's docstrings, in a fixed file order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    found = [
        s
        for _, doc in walk_docstrings(root, skip=lambda p: p in _SKIP or p.startswith("test"))
        for s in split_sentences(doc)
        if _PROSE.match(s) and not _CODE.search(s)
    ]
    return list(dict.fromkeys(found))


def gcide_definitions(root: Path) -> list[str]:
    """Definitions of `dict-gcide` (unpacked under `root`), markup removed, one per sense."""
    with gzip.open(root / "usr/share/dictd/gcide.dict.dz") as f:
        raw = f.read().decode("utf-8", "ignore")
    out: list[str] = []
    for block in raw.split("\n\n"):
        text = " ".join(block.split())
        if not text or "\\" in text[:60]:  # a headword line: "Vaccine \Vac"cine\, n."
            continue
        text = re.sub(r"\[[^\]]*\]", "", text)  # sources, etymology
        text = re.sub(r"^(\d+\.|Note:|Syn\.|--)\s*", "", text)
        text = text.replace("{", "").replace("}", "").replace(" ,", ",").strip()
        if 60 <= len(text) <= 400 and text[0].isupper() and text.endswith("."):
            out.append(text)
    return list(dict.fromkeys(out))


def wordnet_glosses(root: Path) -> list[str]:
    """Noun and verb glosses of `wordnet-base` (unpacked under `root`), as sentences."""
    out: list[str] = []
    for part in ("noun", "verb"):
        for line in (
            (root / f"usr/share/wordnet/data.{part}").read_text(errors="ignore").split("\n")
        ):
            if line.startswith(" ") or "|" not in line:
                continue  # the licence header
            words = line.split(" ")
            lemma = words[4].replace("_", " ")
            gloss = line.split("|", 1)[1].split(";")[0].strip()
            if len(gloss) >= 30:
                out.append(f"{lemma[0].upper()}{lemma[1:]}: {gloss}.")
    return out


def _requests(paragraphs: list[str], rng: random.Random) -> Iterator[str]:
    for paragraph in paragraphs:
        if rng.random() < PLAIN_SHARE:
            yield paragraph
        else:
            yield rng.choice(REQUESTS).format(d=paragraph)


def prose_rows(debian: Path, seed: int, docstrings: int, dictionary: int) -> list[Row]:
    """Benign rows: `docstrings` docstring paragraphs and `dictionary` dictionary paragraphs
    (half GCIDE, half WordNet; half of each on harm-adjacent topics), most behind a request."""
    rng = random.Random(seed)
    rows: list[Row] = []
    doc = _paragraphs(docstring_sentences(), rng, docstrings)
    rows += [
        Row(f"prose-doc-{i}", "prose-doc", "benign", t) for i, t in enumerate(_requests(doc, rng))
    ]
    for name, units in (("gcide", gcide_definitions(debian)), ("wordnet", wordnet_glosses(debian))):
        harm = [u for u in units if _HARM_TOPIC.search(u)]
        half = dictionary // 4
        paragraphs = _paragraphs(units, rng, half) + _paragraphs(harm, rng, dictionary // 2 - half)
        rows += [
            Row(f"prose-{name}-{i}", "prose-dictionary", "benign", t)
            for i, t in enumerate(_requests(paragraphs, rng))
        ]
    return rows
