"""What `keel eval` reports: retrieval metrics per mode, answer metrics, and their tables."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from rich.console import Console
from rich.table import Table

MODES = ("vector", "keyword", "hybrid", "hybrid+rerank")


class ModeMetrics(BaseModel):
    mode: str
    questions: int
    recall_at_5: float
    recall_at_50: float
    mrr_at_10: float
    ndcg_at_10: float
    ms_per_query: float


class AnswerMetrics(BaseModel):
    answerable: int
    unanswerable: int
    citation_correct: float = Field(description="Gold cited (answerable) / nothing cited.")
    citation_precision: float = Field(description="Cited passages that are gold.")
    nei_on_unanswerable: float = Field(description="Unanswerable questions answered NEI.")
    nei_on_answerable: float = Field(description="Answerable questions answered NEI.")
    grounding_share: float = Field(description="Mean supported share of answer sentences.")
    golden: int = 0
    golden_pass: float = Field(default=0.0, description="Golden checks passed.")


class EvalReport(BaseModel):
    passages: int
    questions: int
    answerable: int
    modes: list[ModeMetrics]
    recall_at_5_by_kind: dict[str, dict[str, float]] = Field(default_factory=dict)
    filters_read: str = ""
    answers: AnswerMetrics | None = None
    seconds: float
    reranker: str
    per_question: list[dict[str, Any]] = Field(default_factory=list)

    def mode(self, name: str) -> ModeMetrics:
        return next(m for m in self.modes if m.mode == name)

    def markdown(self) -> str:
        """The README tables."""
        lines = [
            "| retrieval | recall@5 | recall@50 | MRR@10 | nDCG@10 | ms/query |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {m.mode} | {m.recall_at_5:.3f} | {m.recall_at_50:.3f} | {m.mrr_at_10:.3f} "
            f"| {m.ndcg_at_10:.3f} | {m.ms_per_query:.1f} |"
            for m in self.modes
        ]
        if self.recall_at_5_by_kind:
            lines += ["", "| recall@5 by kind | " + " | ".join(MODES) + " |"]
            lines += ["|---" * (len(MODES) + 1) + "|"]
            for kind, row in sorted(self.recall_at_5_by_kind.items()):
                lines.append(f"| {kind} | " + " | ".join(f"{row[m]:.3f}" for m in MODES) + " |")
        if self.answers is not None:
            a = self.answers
            lines += [
                "",
                "| answers (local-extractive, top 5 after rerank) | value |",
                "|---|---|",
                f"| citation correct | {a.citation_correct:.3f} |",
                f"| citation precision | {a.citation_precision:.3f} |",
                f"| NEI on unanswerable ({a.unanswerable}) | {a.nei_on_unanswerable:.3f} |",
                f"| NEI on answerable ({a.answerable}) | {a.nei_on_answerable:.3f} |",
                f"| grounding share | {a.grounding_share:.3f} |",
                f"| golden checks passed ({a.golden}) | {a.golden_pass:.3f} |",
            ]
        return "\n".join(lines)


def mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


def print_report(console: Console, report: EvalReport) -> None:
    """The retrieval table, recall@5 by question kind, and the answer metrics."""
    console.print(
        f"{report.questions} questions ({report.answerable} answerable) over "
        f"{report.passages} passages; reranker: {report.reranker}; {report.seconds:.0f} s"
    )
    table = Table(
        "retrieval", "recall@5", "recall@50", "MRR@10", "nDCG@10", "ms/query", show_edge=False
    )
    for m in report.modes:
        table.add_row(
            m.mode,
            f"{m.recall_at_5:.3f}",
            f"{m.recall_at_50:.3f}",
            f"{m.mrr_at_10:.3f}",
            f"{m.ndcg_at_10:.3f}",
            f"{m.ms_per_query:.1f}",
        )
    console.print(table)
    kinds = Table("recall@5 by kind", *MODES, show_edge=False)
    for kind, row in sorted(report.recall_at_5_by_kind.items()):
        kinds.add_row(kind, *(f"{row[m]:.3f}" for m in MODES))
    console.print(kinds)
    console.print(f"filters: {report.filters_read}")
    if report.answers is not None:
        a = report.answers
        answers = Table("answers (local-extractive)", "value", show_edge=False)
        answers.add_row("citation correct", f"{a.citation_correct:.3f}")
        answers.add_row("citation precision", f"{a.citation_precision:.3f}")
        answers.add_row(f"NEI on unanswerable ({a.unanswerable})", f"{a.nei_on_unanswerable:.3f}")
        answers.add_row(f"NEI on answerable ({a.answerable})", f"{a.nei_on_answerable:.3f}")
        answers.add_row("grounding share", f"{a.grounding_share:.3f}")
        answers.add_row(f"golden checks passed ({a.golden})", f"{a.golden_pass:.3f}")
        console.print(answers)
