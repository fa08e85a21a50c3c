"""Docstrings of installed Python source as prose: read with `ast`, never imported.

Two consumers want sentences of real English prose that nobody here wrote and every machine
has at the same pinned versions: the scale benchmark's corpus generator (the standard library
and Keel's dependencies, by package) and the safety classifier's benign training rows (the
standard library). Each keeps its own filter of what counts as a prose sentence; the walk and
the sentence split are here, once.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator
from pathlib import Path

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def split_sentences(text: str) -> list[str]:
    """`text` with its whitespace collapsed, split after each '.', '!' or '?'."""
    return [s.strip() for s in _SENTENCE_END.split(" ".join(text.split())) if s.strip()]


def walk_docstrings(
    root: Path, skip: Callable[[str], bool]
) -> Iterator[tuple[tuple[str, ...], str]]:
    """(path parts under `root`, docstring) of every module, class and function docstring in
    the `.py` files under `root`, in sorted file order; a file with any path part for which
    `skip` is true, or one that does not parse, is passed over."""
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if any(skip(part) for part in parts):
            continue
        try:
            tree = ast.parse(path.read_text(errors="ignore"))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, _DOCUMENTED):
                doc = ast.get_docstring(node)
                if doc:
                    yield parts, doc
