"""The leaderboard panel: a chart once a variant is rated, a sentence (never a blank chart) before that."""

from __future__ import annotations

import gradio as gr
import pytest

from medalpaca_core.arena.export import Comparison
from medalpaca_core.arena.leaderboard import MIN_VOTES
from medalpaca_core.arena.votes import VoteStore
from medalpaca_core.generation.answers import Answer
from medalpaca_core.generation.settings import PRESETS
from ui.views.leaderboard import LeaderboardPanel


def panel_with_votes(tmp_path, count: int) -> LeaderboardPanel:
    """The panel on a database of ``count`` blind votes, each for "a" over "b"."""
    store = VoteStore(tmp_path / "votes.sqlite3")
    answers = {"a": Answer("a", "Thirst.", "done"), "b": Answer("b", "Hunger.", "done")}
    for _ in range(count):
        store.record(Comparison.from_answers("Symptoms of diabetes?", "", PRESETS["greedy"], answers), "a", blind=True)
    with gr.Blocks():
        panel = LeaderboardPanel(store)
        panel.build()
    return panel


@pytest.mark.parametrize("count", [1, MIN_VOTES - 1, MIN_VOTES])
def test_the_chart_comes_with_the_first_rating_and_a_sentence_stands_in_before(tmp_path, count):
    panel = panel_with_votes(tmp_path, count)
    shown = panel.show("blind")
    charted = count >= MIN_VOTES
    assert shown[panel.chart].visible is charted
    assert (f"No variant has {MIN_VOTES} votes yet" in shown[panel.notes]) is not charted, shown[panel.notes]
    assert [row[3] for row in shown[panel.table]] == [str(count)] * 2  # each variant's count, rated or not
    assert shown[panel.notes].startswith(f"**{count} blind vote{'' if count == 1 else 's'}.**")
