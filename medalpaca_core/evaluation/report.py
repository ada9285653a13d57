"""Reports of an evaluation: a Markdown table, a bar chart, and the paper's table beside them.

Each cell gives the accuracy with its 95% interval, because on a few dozen questions a
difference of ten points is often noise; the chance level and the parse rate are printed next
to it, because a small model in ``generate`` mode is mostly scored on whether it can write a
letter at all. The paper's numbers are in a table of their own, labelled as published, never
mixed with ours.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

from ..paper import STEPS, PaperTable
from .scoring import ALL_STEPS, Score

Scores = Mapping[tuple[str, str], Mapping[str, Score]]  # (variant, mode) -> step -> score


def _cell(score: Score | None) -> str:
    if score is None or score.n == 0:
        return "–"
    low, high = score.interval
    return f"{score.accuracy:.3f} ({low:.2f}–{high:.2f})"


def _columns(scores: Scores) -> list[str]:
    steps = dict.fromkeys(step for by_step in scores.values() for step in by_step if step != ALL_STEPS)
    return [*steps, ALL_STEPS]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(row) + " |" for row in [header, ["---"] * len(header), *rows]]


def results_markdown(scores: Scores, title: str) -> str:
    """Our accuracies per variant, mode and step (95% Wilson interval), parse rate and chance."""
    columns = _columns(scores)
    counts = {c: max((s[c].n for s in scores.values() if c in s), default=0) for c in columns}
    header = ["variant", "mode", *[f"{c} (n={counts[c]})" for c in columns], "parse rate", "chance"]
    rows = []
    for (variant_id, mode), by_step in scores.items():
        total = by_step.get(ALL_STEPS)
        extra = [f"{total.parse_rate:.0%}", f"{total.chance:.3f}"] if total else ["–", "–"]
        rows.append([variant_id, mode, *[_cell(by_step.get(c)) for c in columns], *extra])
    lines = [f"### {title}", "", *_table(header, rows), ""]
    lines.append("Accuracy (95% Wilson interval); unparsed answers count as wrong.")
    return "\n".join(lines) + "\n"


def paper_markdown(table: PaperTable) -> str:
    """The published numbers, labelled as such, with their source."""
    header = ["model (published)", "registry id", *[f"{s} (n={table.questions.get(s, '?')})" for s in STEPS]]
    rows = [[row.model, row.variant or "–", *[f"{row.scores[s]:.3f}" for s in STEPS]] for row in table.rows]
    lines = ["### The paper's numbers (published, not measured here)", "", *_table(header, rows), ""]
    lines.append(f"Source: {table.source}. Real USMLE self-assessment, image questions removed.")
    return "\n".join(lines) + "\n"


def bar_chart(scores: Scores, title: str) -> bytes:
    """A PNG: grouped bars per step, one bar per (variant, mode), 95% intervals, chance line."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = _columns(scores)
    runs = list(scores)
    figure = Figure(figsize=(min(12.0, max(6.0, 2.0 + 0.3 * len(columns) * len(runs))), 4.5), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    width = 0.8 / max(1, len(runs))
    for index, run in enumerate(runs):
        present = [c for c in columns if c in scores[run] and scores[run][c].n]
        positions = [columns.index(c) + (index - (len(runs) - 1) / 2) * width for c in present]
        values = [scores[run][c].accuracy for c in present]
        intervals = [scores[run][c].interval for c in present]
        errors = [  # clipped at 0: at 0 or n correct the interval's end equals the value up to rounding
            [max(0.0, v - low) for v, (low, _) in zip(values, intervals, strict=True)],
            [max(0.0, high - v) for v, (_, high) in zip(values, intervals, strict=True)],
        ]
        axes.bar(positions, values, width, yerr=errors, capsize=3, label=f"{run[0]} · {run[1]}")
    chances = [s[ALL_STEPS].chance for s in scores.values() if ALL_STEPS in s and s[ALL_STEPS].n]
    if chances:
        axes.axhline(sum(chances) / len(chances), color="grey", linestyle="--", linewidth=1, label="chance")
    axes.set_xticks(range(len(columns)), columns)
    axes.set_ylim(0, 1)
    axes.set_ylabel("accuracy (95% interval)")
    axes.set_title(title)
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
