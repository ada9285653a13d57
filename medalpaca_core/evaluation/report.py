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
from typing import Any

from ..models.paper import STEPS, PaperTable
from ..runtime.charts import themed
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


def results_markdown(scores: Scores, title: str, norm_scores: Scores | None = None) -> str:
    """Our accuracies per variant, mode and step (95% Wilson interval), parse rate and chance.

    ``norm_scores`` (loglik's acc_norm) come as extra rows, ``loglik acc_norm``, under their run."""
    columns = _columns(scores)
    counts = {c: max((s[c].n for s in scores.values() if c in s), default=0) for c in columns}
    header = ["variant", "mode", *[f"{c} (n={counts[c]})" for c in columns], "parse rate", "chance"]
    rows = []
    for (variant_id, mode), by_step in scores.items():
        total = by_step.get(ALL_STEPS)
        extra = [f"{total.parse_rate:.0%}", f"{total.chance:.3f}"] if total else ["–", "–"]
        rows.append([variant_id, mode, *[_cell(by_step.get(c)) for c in columns], *extra])
        norm = (norm_scores or {}).get((variant_id, mode))
        if norm:
            rows.append([variant_id, f"{mode} acc_norm", *[_cell(norm.get(c)) for c in columns], *extra])
    lines = [f"### {title}", "", *_table(header, rows), ""]
    lines.append("Accuracy (95% Wilson interval); unparsed answers count as wrong. " + norm_note(scores, norm_scores))
    return "\n".join(lines) + "\n"


def norm_note(scores: Scores, norm_scores: Scores | None) -> str:
    """What acc_norm is where it is shown, and why it is left out where it is not (said once)."""
    shown = "acc_norm: the option with the highest log-likelihood per byte of its text."
    left_out = [run for run in scores if run[1] == "loglik" and run not in (norm_scores or {})]
    if not left_out:
        return shown if norm_scores else ""
    why = "every choice is then one byte long, so acc_norm equals acc."
    if norm_scores:
        return f"{shown} It is left out where letters are scored: {why}"
    return f"acc_norm is not shown: letters were scored, {why}"


def tasks_markdown(scores: Scores, norm_scores: Scores, formats: Mapping[str, str], title: str) -> str:
    """The suite's table: one row per task (with its detected format), one column per run."""
    runs = list(scores)
    header = ["task", "format", "n", *[f"{variant} · {mode}" for variant, mode in runs]]
    rows = []
    for task in [*formats, ALL_STEPS]:
        n = max((scores[run][task].n for run in runs if task in scores[run]), default=0)
        cells = []
        for run in runs:
            cell = _cell(scores[run].get(task))
            norm = norm_scores.get(run, {}).get(task)
            cells.append(f"{cell}; norm {norm.accuracy:.3f}" if norm and norm.n else cell)
        rows.append([task, formats.get(task, "all tasks"), str(n), *cells])
    lines = [f"### {title}: by task", "", *_table(header, rows), ""]
    lines.append("acc (95% Wilson interval); norm: acc_norm (log-likelihood per byte of the choice).")
    return "\n".join(lines) + "\n"


SIGNIFICANCE = 0.05
DIFFER = "differ beyond chance"
NO_EVIDENCE = "no evidence of a difference"


def verdict(pair: Mapping[str, Any]) -> str:
    """One McNemar row's reading: only a p below the significance level says that the runs differ."""
    return DIFFER if pair["p_value"] < SIGNIFICANCE else NO_EVIDENCE


def statistics_markdown(statistics: Mapping[str, Any]) -> str:
    """McNemar's test for every pair of runs, calibration, and position bias."""
    lines = ["### Is the difference real? (McNemar's exact test, same questions)", ""]
    pairs = statistics.get("mcnemar", [])
    if pairs:
        header = ["run A", "run B", "questions", "only A right", "only B right", "p (exact)", "verdict"]
        rows = [
            [p["a"], p["b"], str(p["n"]), str(p["a_only"]), str(p["b_only"]), f"{p['p_value']:.4f}", verdict(p)]
            for p in pairs
        ]
        note = (
            f"Verdict per row at the 5% level: '{DIFFER}' only where p < {SIGNIFICANCE}, otherwise "
            f"'{NO_EVIDENCE}' (which does not show that the two runs are equal)."
        )
        lines += [*_table(header, rows), "", note, ""]
    else:
        lines += ["One run only: nothing to compare.", ""]
    calibration = statistics.get("calibration", {})
    if calibration:
        lines += ["### Calibration (loglik option probabilities)", ""]
        rows = [[run, f"{c['brier']:.4f}", f"{c['ece']:.4f}"] for run, c in calibration.items()]
        lines += [*_table(["run", "Brier score", "ECE (10 bins)"], rows), ""]
        lines += [
            "Brier: 0 is perfect, a uniform guess over 4 options scores 0.75. ECE: mean |confidence - accuracy|.",
            "",
        ]
    bias = statistics.get("position_bias", {})
    if bias:
        lines += ["### Position bias", ""]
        rows = [[run, found["summary"], f"{found['p_value']:.4f}"] for run, found in bias.items()]
        lines += [*_table(["run", "picks", "p (one-sided binomial)"], rows), ""]
    return "\n".join(lines)


@themed
def reliability_chart(calibration: Mapping[str, Mapping[str, Any]]) -> bytes:
    """A PNG reliability diagram: accuracy against confidence per bin, one line per run, the diagonal."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.0, 4.5), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfectly calibrated")
    for run, found in calibration.items():
        bins = found["bins"]
        axes.plot(
            [b["confidence"] for b in bins],
            [b["accuracy"] for b in bins],
            marker="o",
            label=f"{run} (ECE {found['ece']:.3f})",
        )
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("confidence (probability of the picked option)")
    axes.set_ylabel("accuracy")
    axes.set_title("Reliability")
    axes.legend(fontsize="small", loc="upper left")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def paper_markdown(table: PaperTable) -> str:
    """The published numbers, labelled as such, with their source."""
    header = ["model (published)", "registry id", *[f"{s} (n={table.questions.get(s, '?')})" for s in STEPS]]
    rows = [[row.model, row.variant or "–", *[f"{row.scores[s]:.3f}" for s in STEPS]] for row in table.rows]
    lines = ["### The paper's numbers (published, not measured here)", "", *_table(header, rows), ""]
    lines.append(f"Source: {table.source}. Real USMLE self-assessment, image questions removed.")
    return "\n".join(lines) + "\n"


@themed
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
    if runs:  # no scores (a run stopped before its first answer): no legend to draw, nor matplotlib's warning
        axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
