"""The docstring reader shared by the scale corpus and the safety classifier's prose rows."""

from __future__ import annotations

from pathlib import Path

from keel.text.docstrings import split_sentences, walk_docstrings


def test_walk_reads_every_docstring_in_file_order_and_skips_what_it_is_told(
    tmp_path: Path,
) -> None:
    (tmp_path / "b.py").write_text(
        '"""Module b."""\n\nclass C:\n    """Class C."""\n\n    def f(self):\n'
        '        """Method f."""\n\n\nasync def g():\n    """Coroutine g."""\n'
    )
    (tmp_path / "a.py").write_text('"""Module a."""\nimport os\n')
    (tmp_path / "broken.py").write_text('"""Never read."""\ndef (:\n')
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "t.py").write_text('"""Skipped."""\n')
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text("x = 1\n")  # no docstring: nothing yielded

    found = list(walk_docstrings(tmp_path, skip=lambda part: part == "tests"))

    assert found == [
        (("a.py",), "Module a."),
        (("b.py",), "Module b."),
        (("b.py",), "Class C."),
        (("b.py",), "Coroutine g."),
        (("b.py",), "Method f."),
    ]


def test_sentences_split_after_end_marks_with_whitespace_collapsed() -> None:
    text = "  First one.\n   Second\tone!  Third one?Not split here.  "
    assert split_sentences(text) == ["First one.", "Second one!", "Third one?Not split here."]
    assert split_sentences("   ") == []
