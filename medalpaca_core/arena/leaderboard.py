"""The leaderboard as people read it: one row per variant and a chart of ratings with their intervals.

The same rows feed the command line's table and the app's; the chart puts each rating with its
95% interval on one axis, so overlapping intervals (no real difference yet) are seen at a glance.
"""

from __future__ import annotations

from matplotlib.figure import Figure

from ..runtime.charts import themed
from .ratings import BASE_RATING, Leaderboard

HEADERS = ["variant", "rating", "95% interval", "votes", "win rate"]


def rows(board: Leaderboard) -> list[list[str]]:
    """Rows under ``HEADERS``, best first; win rate is the share of pairwise outcomes won, ties counting half."""
    return [
        [r.variant, f"{r.rating:.0f}", f"{r.ci_low:.0f} to {r.ci_high:.0f}", str(r.votes), f"{r.win_rate:.0%}"]
        for r in board.ratings
    ]


def text_table(board: Leaderboard) -> str:
    table = [HEADERS, *rows(board)]
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADERS))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in table)


@themed
def chart(board: Leaderboard, title: str = "Ratings (Bradley–Terry, 95% bootstrap intervals)") -> Figure:
    """Ratings as points with interval bars, best at the top; an empty board gives an empty, labelled chart."""
    ratings = list(reversed(board.ratings))
    figure = Figure(figsize=(7.0, 1.2 + 0.45 * max(1, len(ratings))), dpi=100)
    axes = figure.add_subplot()
    positions = range(len(ratings))
    values = [r.rating for r in ratings]
    errors = [[r.rating - r.ci_low for r in ratings], [r.ci_high - r.rating for r in ratings]]
    axes.errorbar(values, positions, xerr=errors, fmt="o", capsize=4, color="#0f766e")
    axes.axvline(BASE_RATING, color="grey", linestyle="--", linewidth=1)
    axes.set_yticks(list(positions), [r.variant for r in ratings])
    axes.set_xlabel("rating (mean 1000; 400 points = 10:1 odds)")
    axes.set_title(title if ratings else "No ratings yet: vote on a comparison", fontsize="medium")
    figure.tight_layout()
    return figure
