"""The leaderboard under the Compare tab: Bradley–Terry ratings with 95% intervals, a chart, the votes as a file.

The public ratings come from blind votes only (a vote cast with the names shown may reward a
name); the votes cast with names shown can be rated apart. No votes, too few, or a database that
cannot be read give a sentence instead of a table of NaN or a traceback.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from medalpaca_core.arena.leaderboard import HEADERS, MIN_VOTES, any_rated, chart, rows
from medalpaca_core.arena.ratings import RatingError, leaderboard
from medalpaca_core.arena.votefile import VOTER_NOTE, write_jsonl
from medalpaca_core.arena.votes import VoteStorageError, VoteStore, votes_of
from medalpaca_core.text.plural import counted

from .common import literal_html, user_error

KINDS = [("Blind votes (the public ratings)", "blind"), ("Votes cast with the names shown", "unblinded")]
FEW_VOTES = 30  # below this many votes the intervals are wide, and the page says so
COLUMN_WIDTHS = ["28%", "15%", "25%", "15%", "17%"]  # of the table: every column in sight on a phone, too
EXPLAINED = (
    "Bradley–Terry ratings (1000 + 400·log10 of the strength; 400 points = 10:1 odds) with 95% bootstrap "
    "intervals; a vote for one of K answers is K−1 wins, a tie or *all bad* a tie among all shown. "
    "Where two intervals overlap, the votes do not yet tell the two apart."
)


def summary(count: int, kind: str, notes: list[str], charted: bool) -> str:
    """The sentence above the table: what was rated, from how many votes, and any caveat; ``charted``: whether a
    variant has its rating yet (else a sentence says when ratings and their chart appear, instead of a blank chart)."""
    noun, shown = ("blind vote", "") if kind == "blind" else ("vote", " cast with the names shown")
    if not count:
        return f"No {noun}s{shown} yet: vote on a comparison and its ratings appear here."
    lines = [f"**{counted(count, noun)}{shown}.** {EXPLAINED}"]
    if not charted:
        lines.append(
            f"No variant has {MIN_VOTES} votes yet: each one's rating, and the chart, appear once it has; "
            "the table counts the votes so far."
        )
    elif count < FEW_VOTES:
        lines.append(f"Only {count} so far: the intervals are wide and the order may still change.")
    return "\n\n".join([*lines, *(literal_html(note) for note in notes)])


class LeaderboardPanel:
    """The leaderboard's widgets and handlers, on the app's votes database."""

    def __init__(self, votes: VoteStore, exportable: bool = True):
        """``exportable``: whether visitors may download every vote. Not on a public deployment: votes hold
        what other visitors asked, and its operator exports them with ``python -m medalpaca_core export-votes``."""
        self.votes, self.exportable = votes, exportable

    def show(self, kind: str | None) -> dict[Any, Any]:
        """Table, chart and summary for the blind votes (``kind`` "blind") or the others ("unblinded")."""
        kind = "unblinded" if kind == "unblinded" else "blind"
        try:
            votes = votes_of(self.votes.records(), blind=kind == "blind")
            board = leaderboard(votes)
        except (VoteStorageError, RatingError) as error:
            return {
                self.notes: f"⚠ {literal_html(str(error))}",
                self.table: [],
                self.chart: gr.Plot(None, visible=False),
            }
        charted = any_rated(board)  # else an empty plot would only be a blank box under the sentence saying so
        return {
            self.notes: summary(len(votes), kind, board.notes, charted),
            self.table: rows(board),
            self.chart: gr.Plot(chart(board) if charted else None, visible=charted),
        }

    def export(self) -> Iterator[dict[Any, Any]]:
        """Every vote (blind and not) as JSON Lines, one object per vote."""
        try:
            records = self.votes.records()
        except VoteStorageError as error:
            raise user_error(error, title="Votes not exported") from error
        # Gradio copies the file into its cache before the generator resumes; the folder can then go.
        with tempfile.TemporaryDirectory(prefix="medalpaca-votes-") as folder:
            path = Path(folder) / "votes.jsonl"
            with path.open("w", encoding="utf-8") as stream:
                count = write_jsonl(records, stream)
            note = f"{counted(count, 'vote')}. {VOTER_NOTE}"
            yield {self.file: gr.File(value=str(path), visible=True), self.export_note: note}

    @property
    def inputs(self) -> list[Any]:
        return [self.kind]

    @property
    def outputs(self) -> list[Any]:
        return [self.notes, self.table, self.chart]

    def build(self) -> None:
        with gr.Accordion("Leaderboard", open=True, elem_id="leaderboard"):
            self.kind = gr.Radio(KINDS, value="blind", label="Rate", elem_id="leaderboard-kind")
            self.notes = gr.Markdown("", elem_id="leaderboard-notes")
            self.table = gr.Dataframe(
                headers=HEADERS,
                interactive=False,
                wrap=True,
                column_widths=COLUMN_WIDTHS,
                elem_id="leaderboard-table",
                label="Ratings",
            )
            self.chart = gr.Plot(label="Ratings with their 95% intervals", elem_id="leaderboard-chart", visible=False)
            if self.exportable:
                self.build_export()
        gr.on(None, self.show, self.inputs, self.outputs, api_name="leaderboard", concurrency_limit=None)

    def build_export(self) -> None:
        with gr.Row():
            export = gr.Button("Export every vote (JSON Lines)", size="md", elem_id="leaderboard-export")
            self.export_note = gr.Markdown("")
        self.file = gr.File(label="votes.jsonl", visible=False, interactive=False)
        export.click(self.export, None, [self.file, self.export_note], api_name="export_votes", concurrency_limit=None)
