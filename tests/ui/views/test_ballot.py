"""What a Compare column shows for a ballot: nothing that tells variants apart while sealed, everything after."""

from __future__ import annotations

import random
import time
from dataclasses import replace

from medalpaca_core.arena.ballots import BallotBox
from medalpaca_core.arena.export import Comparison
from medalpaca_core.arena.notes import ColumnNotes
from medalpaca_core.arena.votes import VoteStore
from medalpaca_core.generation.answers import Answer, Prompt, Stats
from medalpaca_core.generation.settings import PRESETS
from ui.views.ballot import column_view, run_line, vote_choices, vote_message

STATS = Stats(12, 9, 0.2, 1.4, 300 * 1024**2, "int8", True, "eos")
IDS = ["smol-int8", "smol-lora"]
LABELS = {"smol-int8": "SmolLM2 int8", "smol-lora": "SmolLM2 LoRA"}
PRECISIONS = {"smol-int8": "int8", "smol-lora": "bf16"}


def ballot(tmp_path, blind: bool = True):
    box = BallotBox(VoteStore(tmp_path / "votes.sqlite3"), shuffler=random.Random(3))
    ballot = box.issue("s", IDS, blind)
    answers = {
        "smol-int8": Answer("smol-int8", "Drink water.", "done", None, STATS),
        "smol-lora": Answer("smol-lora", "", "error", "smol-lora is unavailable: its adapter is corrupt"),
    }
    box.show(ballot, Comparison.from_answers("q", "", PRESETS["greedy"], answers), answers)
    notes = ColumnNotes(Prompt("### Instruction: q", 42, False), "Departs from the base at token 3: …")
    ballot.details = {ident: notes for ident in IDS}  # what finishing would keep, on a ballot still open
    return box, ballot, answers


def shown(ballot, answers) -> str:
    views = [column_view(ballot, n, answers[ident], LABELS.get) for n, ident in enumerate(ballot.columns)]
    return repr(views) + run_line(ballot, answers, time.perf_counter()) + repr(vote_choices(ballot, answers))


def test_a_sealed_column_names_nothing_and_shows_no_statistic(tmp_path):
    _, sealed, answers = ballot(tmp_path)
    text = shown(sealed, answers)
    leaks = [*IDS, *LABELS.values(), "int8", "MB", "tok/s", "corrupt", "Instruction", "Departs", "truncated"]
    assert not [word for word in leaks if word in text], text
    assert "Model A" in text and "Model B" in text and "Drink water." in text and "9 tokens" in text
    answered = f"Model {'AB'[sealed.columns.index('smol-int8')]}"  # the other column failed: no choice
    assert vote_choices(sealed, answers) == [(answered, answered), ("Tie", "tie"), ("All bad", "all-bad")]


def test_after_the_vote_every_column_is_named_with_its_statistics_notes_and_prompt(tmp_path):
    box, voted, answers = ballot(tmp_path)
    winner = f"Model {'AB'[voted.columns.index('smol-int8')]}"
    box.vote(voted.id, "s", winner, client="c")
    views = {
        view.label.split(": ")[1]: view
        for view in (
            column_view(voted, n, answers[ident], LABELS.get, PRECISIONS.get) for n, ident in enumerate(voted.columns)
        )
    }
    assert views["smol-int8"].label == f"{winner}: smol-int8"
    assert views["smol-int8"].status.startswith("✓ int8 · 9 tokens · ended by itself · ")
    assert "300 MB" in views["smol-int8"].status and "input truncated" in views["smol-int8"].status
    assert f"**{winner} was SmolLM2 int8** (`smol-int8`)" in views["smol-int8"].notes
    assert "Departs from the base" in views["smol-int8"].notes and views["smol-int8"].prompt.tokens == 42
    assert "corrupt" in views["smol-lora"].status
    assert vote_message(voted) == f"Your blind vote: **{winner} (smol-int8)**. Thank you!"


def test_an_unblinded_ballot_names_its_columns_from_the_start(tmp_path):
    _, open_ballot, answers = ballot(tmp_path, blind=False)
    assert open_ballot.columns == tuple(IDS)
    view = column_view(open_ballot, 0, answers["smol-int8"], LABELS.get, PRECISIONS.get)
    assert view.label == "smol-int8" and "int8" in view.status and view.notes.startswith("Departs")
    assert vote_choices(open_ballot, answers)[0] == ("smol-int8", "smol-int8")


def test_a_blind_comparison_with_nothing_to_vote_on_is_unsealed_when_it_ends(tmp_path):
    box = BallotBox(VoteStore(tmp_path / "votes.sqlite3"))
    ballot = box.issue("s", IDS, blind=True)
    failed = {ident: Answer(ident, "", "error", f"{ident} is unavailable") for ident in IDS}
    assert ballot.sealed
    ballot.finish({})
    assert not ballot.sealed and "unavailable" in column_view(ballot, 0, failed[ballot.columns[0]], LABELS.get).status


def test_a_stopped_answer_reads_stopped_not_finished_and_a_cut_one_names_its_limit(tmp_path):
    _, sealed, answers = ballot(tmp_path)
    stopped = {**answers, "smol-int8": replace(answers["smol-int8"], stats=replace(STATS, finish_reason="cancelled"))}
    column = sealed.columns.index("smol-int8")
    status = column_view(sealed, column, stopped["smol-int8"], LABELS.get).status
    assert status.startswith("⏹ 9 tokens · stopped by you") and "✓" not in status, status
    run = run_line(sealed, stopped, time.perf_counter())
    assert run.startswith("Stopped by you after") and "Finished" not in run, run
    limited = replace(answers["smol-int8"], stats=replace(STATS, finish_reason="length"))
    assert "✓ 9 tokens · ended at the 9-token limit" in column_view(sealed, column, limited, LABELS.get).status
