"""The retrieval evaluation set kept in `evals/`: a labelled corpus, questions, golden answers.

No registry package ships a retrieval dataset together with its corpus, so Keel keeps its own
(self-written, CC0; see `evals/SOURCES.md`). The files are JSON lines, one record per line:

- `evals/corpus/*.jsonl`: `Passage` records, several passages per document (`doc_id`);
- `evals/questions.jsonl`: `Question` records whose gold answers are passage ids;
- `evals/golden.jsonl`: `GoldenItem` answer-level checks (must / must not contain).

The models forbid unknown fields, so a typo in a hand-edited file fails loudly at load time
instead of silently dropping a label.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# The package is installed editable, so the repository's `evals/` sits two levels above it.
EVALS_DIR = Path(__file__).resolve().parents[2] / "evals"
CORPUS_DIR = EVALS_DIR / "corpus"
QUESTIONS_PATH = EVALS_DIR / "questions.jsonl"
GOLDEN_PATH = EVALS_DIR / "golden.jsonl"

QuestionKind = Literal[
    "direct",
    "paraphrase",
    "metadata_filter",
    "distractor",
    "keyword",
    "multi_passage",
    "unanswerable",
]
QUESTION_KINDS: tuple[str, ...] = get_args(QuestionKind)

_Record = TypeVar("_Record", bound=BaseModel)


class DatasetError(ValueError):
    """A dataset file is missing or one of its lines does not hold a valid record."""


class Passage(BaseModel):
    """One labelled passage; the passages sharing a `doc_id` form one document."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    doc_id: str
    passage_id: str
    source: str = Field(description="A file path inside the fictional company's drive.")
    title: str
    date: dt.date
    department: str
    doc_type: str
    text: str
    licence: str
    origin: str


class QuestionFilters(BaseModel):
    """Metadata filters a question needs; the gold passages always satisfy them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    department: str | None = None
    doc_type: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None

    def is_empty(self) -> bool:
        """True when the question needs no filter."""
        return not (self.department or self.doc_type or self.date_from or self.date_to)

    def matches(self, passage: Passage) -> bool:
        """True when `passage` passes every filter that is set (dates inclusive)."""
        return (
            (self.department is None or passage.department == self.department)
            and (self.doc_type is None or passage.doc_type == self.doc_type)
            and (self.date_from is None or passage.date >= self.date_from)
            and (self.date_to is None or passage.date <= self.date_to)
        )

    def as_rag_filters(self) -> dict[str, Any]:
        """The same filters in the shape of `keel.contracts.rag.RagFilters` (lists of values)."""
        return {
            "date_from": self.date_from,
            "date_to": self.date_to,
            "departments": [self.department] if self.department else [],
            "doc_types": [self.doc_type] if self.doc_type else [],
        }


class Question(BaseModel):
    """A question with the passages that answer it (none for `unanswerable`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    qid: str
    question: str
    gold_passage_ids: list[str] = Field(default_factory=list)
    answer: str = Field(description="Short gold answer; appears in a gold passage's text.")
    kind: QuestionKind
    filters: QuestionFilters = Field(default_factory=QuestionFilters)
    distractor_passage_ids: list[str] = Field(
        default_factory=list,
        description="Near-duplicate passages that look right but hold another value.",
    )

    @property
    def answerable(self) -> bool:
        """True when the corpus holds the answer."""
        return bool(self.gold_passage_ids)

    @model_validator(mode="after")
    def _consistent(self) -> Question:
        if (self.kind == "unanswerable") == bool(self.gold_passage_ids):
            raise ValueError("exactly the unanswerable questions have no gold passages")
        if self.kind == "multi_passage" and len(self.gold_passage_ids) < 2:
            raise ValueError("a multi_passage question needs at least two gold passages")
        if self.kind == "metadata_filter" and self.filters.is_empty():
            raise ValueError("a metadata_filter question needs filters")
        if set(self.gold_passage_ids) & set(self.distractor_passage_ids):
            raise ValueError("a passage cannot be both gold and distractor")
        return self


class GoldenItem(BaseModel):
    """An answer-level check: the answer to `input` must / must not contain these strings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input: str
    must_contain: list[str] = Field(default_factory=list)
    must_not_contain: list[str] = Field(default_factory=list)
    id: str | None = None
    qid: str | None = Field(default=None, description="The question this check was made from.")


def _read_jsonl(path: Path, model: type[_Record]) -> list[_Record]:
    records: list[_Record] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                records.append(model.model_validate(json.loads(line)))
            except (json.JSONDecodeError, ValidationError) as exc:
                raise DatasetError(f"{path}:{number}: not a valid {model.__name__}: {exc}") from exc
    return records


def _file(path: Path | str | None, default: Path) -> Path:
    chosen = Path(path) if path is not None else default
    if not chosen.is_file():
        raise DatasetError(f"no dataset file at {chosen}")
    return chosen


def load_corpus(path: Path | str | None = None) -> list[Passage]:
    """Load the passages of the evaluation corpus.

    Args:
        path: a `.jsonl` file, or a folder whose `*.jsonl` files are read in name order;
            default `evals/corpus/`.

    Returns:
        Every passage, in file order.

    Raises:
        DatasetError: no such file or folder, an empty folder, or an invalid line.
    """
    chosen = Path(path) if path is not None else CORPUS_DIR
    if chosen.is_dir():
        files = sorted(chosen.glob("*.jsonl"))
        if not files:
            raise DatasetError(f"no *.jsonl corpus files in {chosen}")
        return [p for file in files for p in _read_jsonl(file, Passage)]
    return _read_jsonl(_file(chosen, CORPUS_DIR), Passage)


def load_questions(path: Path | str | None = None) -> list[Question]:
    """Load the labelled questions (default `evals/questions.jsonl`).

    Raises:
        DatasetError: no such file, or an invalid line.
    """
    return _read_jsonl(_file(path, QUESTIONS_PATH), Question)


def load_golden(path: Path | str | None = None) -> list[GoldenItem]:
    """Load the answer-level checks (default `evals/golden.jsonl`).

    Raises:
        DatasetError: no such file, or an invalid line.
    """
    return _read_jsonl(_file(path, GOLDEN_PATH), GoldenItem)


def index_passages(passages: Iterable[Passage]) -> dict[str, Passage]:
    """Passages by `passage_id`.

    Raises:
        DatasetError: two passages share an id.
    """
    index: dict[str, Passage] = {}
    for passage in passages:
        if passage.passage_id in index:
            raise DatasetError(f"duplicate passage id {passage.passage_id}")
        index[passage.passage_id] = passage
    return index


__all__ = [
    "CORPUS_DIR",
    "EVALS_DIR",
    "GOLDEN_PATH",
    "QUESTIONS_PATH",
    "QUESTION_KINDS",
    "DatasetError",
    "GoldenItem",
    "Passage",
    "Question",
    "QuestionFilters",
    "QuestionKind",
    "index_passages",
    "load_corpus",
    "load_golden",
    "load_questions",
]
