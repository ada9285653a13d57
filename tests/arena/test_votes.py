"""Votes: one per comparison, only for columns that answered, old databases migrated, JSON Lines, the CLI."""

from __future__ import annotations

import json
import re
import sqlite3

import numpy as np
import pytest

from medalpaca_core.arena.export import Comparison
from medalpaca_core.arena.ratings import Vote
from medalpaca_core.arena.votefile import FIELDS, read_jsonl, read_lines, write_jsonl
from medalpaca_core.arena.votes import ALL_BAD, TIE, VoteError, VoteStore
from medalpaca_core.cli import main
from medalpaca_core.generation.answers import Answer, Stats
from medalpaca_core.generation.settings import PRESETS
from tests.arena.test_export import finished_comparison
from tests.arena.test_ratings import TRUE, luce_votes

STATS = Stats(20, 12, 0.25, 1.5, 1_000_000, "none", False, "length")
# The first schema, as databases made before blind mode have it.
OLD_SCHEMA = """CREATE TABLE votes (id INTEGER PRIMARY KEY, comparison_id TEXT NOT NULL UNIQUE, created TEXT NOT NULL,
voted TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')), winner TEXT NOT NULL, variant_ids TEXT NOT NULL,
question TEXT NOT NULL, context TEXT NOT NULL, answers TEXT NOT NULL, settings TEXT NOT NULL)"""


def comparison(**statuses: str) -> Comparison:
    """A comparison whose columns have the given statuses; 'done' columns answered, the others did not."""
    answers = {
        ident: Answer(ident, f"{ident} says drink water." if status != "error" else "", status, None, STATS)
        for ident, status in statuses.items()
    }
    return Comparison.from_answers("Symptoms of diabetes?", "ctx", PRESETS["greedy"], answers)


def rows(store: VoteStore) -> int:
    return store.count()


@pytest.fixture
def store(tmp_path):
    return VoteStore(tmp_path / "votes.sqlite3")


def test_one_vote_per_comparison_and_a_second_is_refused_and_stored_nowhere(store):
    first = comparison(a="done", b="done")
    store.record(first, "a", blind=True)
    with pytest.raises(VoteError, match="already has a vote"):
        store.record(first, "b", blind=True)
    assert rows(store) == 1 and store.records()[0]["winner"] == "a"


def test_votes_only_for_columns_that_answered(store):
    partly = comparison(a="done", b="error", c="loading")
    for winner, message in [("b", "'b': it gave no answer"), ("c", "'c': it gave no answer"), ("z", "are from a ")]:
        with pytest.raises(VoteError, match=message):
            store.record(partly, winner)
    assert rows(store) == 0
    store.record(partly, TIE)  # a tie among those that answered
    assert store.records()[0]["variants"] == ["a"]


def test_a_comparison_that_produced_no_answer_cannot_be_voted_on(store):
    unavailable = comparison(hub7b="error", hub13b="error")
    for winner in ("hub7b", TIE, ALL_BAD):
        with pytest.raises(VoteError, match="produced no answer"):
            store.record(unavailable, winner)
    assert rows(store) == 0


def test_an_old_database_is_migrated_without_losing_rows(store):
    answers = json.dumps([{"variant_id": v, "text": "t", "status": "done", "error": None, "stats": None} for v in "ab"])
    with sqlite3.connect(store.path) as connection:
        connection.execute(OLD_SCHEMA)
        connection.execute(
            "INSERT INTO votes (comparison_id, created, winner, variant_ids, question, context, answers, settings) "
            "VALUES ('old', '2026-01-01T00:00:00+00:00', 'a', '[\"a\", \"b\"]', 'q', '', ?, '{}')",
            (answers,),
        )
    store.record(comparison(a="done", b="done"), "b", blind=True)
    old, new = store.records()
    assert (old["comparison_id"], old["winner"], old["blind"], old["variants"]) == ("old", "a", False, ["a", "b"])
    assert new["blind"] is True and rows(store) == 2
    assert [r.variant for r in store.ratings(blind=False).ratings] == ["a", "b"]  # the old vote is unblinded
    assert [r.variant for r in store.ratings(blind=True).ratings] == ["b", "a"]


def test_export_holds_every_field_and_reads_back(store, tmp_path):
    store.record(comparison(a="done", b="error", c="done"), "c", blind=True)
    store.record(comparison(a="done", c="done"), ALL_BAD)
    path = tmp_path / "votes.jsonl"
    with path.open("w", encoding="utf-8") as stream:
        assert write_jsonl(store.records(), stream) == 2
    first = json.loads(path.read_text().splitlines()[0])
    assert list(first) == list(FIELDS)
    assert first["variants"] == ["a", "c"] and first["answers"] == ["a says drink water.", "c says drink water."]
    assert (first["winner"], first["blind"], first["question"]) == ("c", True, "Symptoms of diabetes?")
    assert first["settings"]["max_new_tokens"] == 128 and first["time"].endswith("Z")
    read = read_jsonl(path)
    assert read.selected(blind=True) == [Vote(("a", "c"), "c")] and read.selected(blind=False) == [
        Vote(("a", "c"), ALL_BAD)
    ]


def test_reading_skips_bad_lines_with_a_note_and_counts_a_comparison_once():
    good = {"comparison_id": "x", "variants": ["a", "b"], "winner": "a", "blind": True, "time": "2026-11-28T09:00:00Z"}
    lines = [
        json.dumps({**good, "extra": 1}),  # unknown keys are ignored, answers/settings/question/context optional
        "",
        "{not json",
        "[1, 2]",
        json.dumps({k: v for k, v in good.items() if k != "blind"}),
        json.dumps({**good, "comparison_id": "y", "winner": "c"}),
        json.dumps({**good, "comparison_id": "z", "time": "yesterday"}),
        json.dumps(good),
    ]
    result = read_lines(lines)
    assert [stored.comparison_id for stored in result.votes] == ["x"]
    assert result.problems == [
        "line 3 skipped: not JSON (Expecting property name enclosed in double quotes)",
        "line 4 skipped: not a JSON object",
        "line 5 skipped: missing blind",
        "line 6 skipped: the winner 'c' is not one of the variants shown (a, b), nor 'tie' or 'all-bad'",
        "line 7 skipped: 'time' is not ISO 8601: 'yesterday'",
        "line 8 skipped: comparison x was already counted",
    ]


def write_votes(path, votes: list[Vote], blind: bool = True) -> None:
    lines = [
        json.dumps(
            {
                "comparison_id": str(n),
                "variants": list(v.variants),
                "winner": v.winner,
                "blind": blind,
                "time": "2026-11-28",
            }
        )
        for n, v in enumerate(votes)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_cli_leaderboard_json_from_a_file(tmp_path, capsys):
    path = tmp_path / "votes.jsonl"
    write_votes(path, luce_votes(TRUE, 600, np.random.default_rng(7)))
    assert main(["leaderboard", "--votes", str(path), "--json"]) == 0
    board = json.loads(capsys.readouterr().out)
    assert [row["variant"] for row in board] == list(TRUE)
    assert all(set(row) == {"variant", "rating", "ci_low", "ci_high", "votes"} for row in board)
    assert all(row["ci_low"] <= row["rating"] <= row["ci_high"] for row in board)
    assert main(["leaderboard", "--votes", str(path), "--unblinded"]) == 1
    assert "No unblinded votes to rate" in capsys.readouterr().err


def test_cli_leaderboard_table_from_the_database_and_export(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MEDALPACA_HOME", str(tmp_path))
    assert main(["leaderboard"]) == 1
    assert "No blind votes to rate (the unblinded ones: --unblinded)." in capsys.readouterr().err
    store = VoteStore()
    store.record(comparison(a="done", b="done"), "a", blind=True)
    store.record(comparison(a="done", b="done", c="done"), "b", blind=True)
    assert main(["leaderboard"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["variant", "rating", "95%", "interval", "votes", "win", "rate"]
    assert "nan" not in out.lower()
    assert main(["export-votes", "--output", str(tmp_path / "out.jsonl")]) == 0
    assert "2 votes exported. Votes store nothing about the voter" in capsys.readouterr().err
    assert len(read_jsonl(tmp_path / "out.jsonl").votes) == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "No valid vote in .*: it is empty"),
        ("{oops\n[]\n", "No valid vote in .*: line 1 skipped: not JSON.*line 2 skipped: not a JSON object"),
        (None, "No votes file at"),
    ],
)
def test_cli_bad_votes_files_get_a_message_not_a_traceback(tmp_path, capsys, content, message):
    path = tmp_path / "votes.jsonl"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    assert main(["leaderboard", "--votes", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert re.search(message, err), err


def test_cli_single_variant_and_all_ties_say_so(tmp_path, capsys):
    path = tmp_path / "votes.jsonl"
    write_votes(path, [Vote(("a",), "a")])
    assert main(["leaderboard", "--votes", str(path), "--json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out) == [] and "never compared with another variant: a" in captured.err
    write_votes(path, [Vote(("a", "b"), TIE), Vote(("a", "b"), ALL_BAD)])
    assert main(["leaderboard", "--votes", str(path), "--json"]) == 0
    captured = capsys.readouterr()
    assert [row["rating"] for row in json.loads(captured.out)] == [1000.0, 1000.0]
    assert "Every vote is a tie" in captured.err


def test_votes_are_stored_once_and_ranked(tmp_path):
    store = VoteStore(tmp_path / "votes.sqlite3")
    first, second = finished_comparison(), finished_comparison()
    store.record(first, "a")
    with pytest.raises(VoteError, match="already has a vote"):
        store.record(first, ALL_BAD)  # a comparison counts once
    store.record(second, ALL_BAD)
    assert store.count() == 2
    board = {row.variant_id: row for row in store.leaderboard()}
    assert (board["b"].wins, board["b"].comparisons, board["a"].wins, board["a"].all_bad) == (0, 2, 1, 1)
    with sqlite3.connect(store.path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        columns = [row[1] for row in connection.execute("PRAGMA table_info(votes)")]
    assert columns == [
        "id",
        "comparison_id",
        "created",
        "voted",
        "winner",
        "variant_ids",
        "question",
        "context",
        "answers",
        "settings",
        "blind",
    ]


def test_a_vote_must_name_a_compared_variant(tmp_path):
    with pytest.raises(VoteError, match=r"'c': the answers are from a \(or"):
        VoteStore(tmp_path / "votes.sqlite3").record(finished_comparison(), "c")
