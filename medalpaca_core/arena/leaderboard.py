"""The leaderboard as people read it: one row per variant and a chart of ratings with their intervals.

The same rows feed the command line's table and the app's; the chart puts each rating with its
95% interval on one axis, so overlapping intervals (no real difference yet) are seen at a glance.
A variant's rating is shown once it has ``MIN_VOTES`` votes: one vote gives a number ("907, 836 to
907") that only looks like a measurement; until then its row says how many votes it has and needs.
"""

from __future__ import annotations

from matplotlib.figure import Figure

from ..runtime.charts import themed
from ..text.plural import counted
from .ratings import BASE_RATING, Leaderboard, Rating

HEADERS = ["variant", "rating", "95% interval", "votes", "win rate"]
MIN_VOTES = 5  # votes that showed a variant before its rating is shown


def rated(rating: Rating) -> bool:
    return rating.votes >= MIN_VOTES


def any_rated(board: Leaderboard) -> bool:
    """Whether the chart has anything to show: a variant with ``MIN_VOTES`` votes."""
    return any(rated(rating) for rating in board.ratings)


def rows(board: Leaderboard) -> list[list[str]]:
    """Rows under ``HEADERS``, best first; win rate is the share of pairwise outcomes won, ties counting half.
    A variant with fewer than ``MIN_VOTES`` votes has a row, its votes and no rating yet."""
    return [
        [
            r.variant,
            f"{r.rating:.0f}" if rated(r) else "–",
            f"{r.ci_low:.0f} to {r.ci_high:.0f}" if rated(r) else f"after {MIN_VOTES} votes",
            str(r.votes),
            f"{r.win_rate:.0%}",
        ]
        for r in board.ratings
    ]


def text_table(board: Leaderboard) -> str:
    table = [HEADERS, *rows(board)]
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADERS))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in table)


@themed
def chart(board: Leaderboard, title: str = "Ratings (Bradley–Terry, 95% bootstrap intervals)") -> Figure:
    """Ratings as points with interval bars, best at the top, for the variants with ``MIN_VOTES`` votes, each named
    with its count of votes; with none the chart is empty and says so."""
    ratings = [rating for rating in reversed(board.ratings) if rated(rating)]
    figure = Figure(figsize=(7.0, 1.2 + 0.45 * max(1, len(ratings))), dpi=100)
    axes = figure.add_subplot()
    positions = range(len(ratings))
    values = [r.rating for r in ratings]
    errors = [[r.rating - r.ci_low for r in ratings], [r.ci_high - r.rating for r in ratings]]
    axes.errorbar(values, positions, xerr=errors, fmt="o", capsize=4, color="#0f766e")
    axes.axvline(BASE_RATING, color="grey", linestyle="--", linewidth=1)
    axes.set_yticks(list(positions), [f"{r.variant} ({counted(r.votes, 'vote')})" for r in ratings])
    axes.set_xlabel("rating (mean 1000; 400 points = 10:1 odds)")
    empty = f"No ratings yet: a variant is rated after {MIN_VOTES} votes"
    axes.set_title(title if ratings else empty, fontsize="medium")
    figure.tight_layout()
    return figure
