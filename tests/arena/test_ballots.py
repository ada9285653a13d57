"""Trusted votes: server-issued comparison ids, one vote each, only for columns that answered, a per-client cap,
and blind columns shuffled evenly."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from medalpaca_core.arena.ballots import BallotBox, column_label, ready_to_vote
from medalpaca_core.arena.export import Comparison
from medalpaca_core.arena.votes import ALL_BAD, TIE, VoteError, VoteStore
from medalpaca_core.generation.answers import Answer
from medalpaca_core.generation.settings import PRESETS
from medalpaca_core.serving.ratelimit import RateLimit, RateLimiter

VARIANTS = ["base", "lora-a", "lora-b", "int8"]


def answers(**texts: str) -> dict[str, Answer]:
    return {
        ident: Answer(ident, text, "done" if text else "error", None if text else "unavailable")
        for ident, text in texts.items()
    }


@pytest.fixture
def box(tmp_path):
    return BallotBox(VoteStore(tmp_path / "votes.sqlite3"), shuffler=random.Random(0))


def shown(box: BallotBox, session: str = "s1", blind: bool = True, **texts: str):
    ballot = box.issue(session, list(texts), blind)
    snapshot = answers(**texts)
    box.show(
        ballot, Comparison.from_answers("q", "", PRESETS["greedy"], {i: snapshot[i] for i in ballot.columns}), snapshot
    )
    return ballot


def column_shares(box: BallotBox, comparisons: int) -> dict[tuple[str, int], float]:
    positions = Counter()
    for _ in range(comparisons):
        ballot = box.issue("s", VARIANTS, blind=True)
        positions.update((ident, column) for column, ident in enumerate(ballot.columns))
    return {key: count / comparisons for key, count in positions.items()}


def test_blind_columns_land_in_every_position_evenly(tmp_path):
    """Issue 12's target: 400 seeded comparisons of 4 variants put each variant in each column 25% +- 5% of the time.

    The shuffles are independent and uniform, so whether all 16 shares of one run of 400 fall within 5 points
    is chance (one share's standard deviation is 2.2 points; 157 of the seeds 0..199 meet it for all 16): seed 1
    does. That the shuffle itself is even shows in the long run: 20,000 comparisons, every share 25% +- 1.5%."""
    shares = column_shares(BallotBox(VoteStore(tmp_path / "v.sqlite3"), shuffler=random.Random(1)), 400)
    assert len(shares) == 16 and all(0.20 <= share <= 0.30 for share in shares.values()), shares
    shares = column_shares(BallotBox(VoteStore(tmp_path / "v.sqlite3"), shuffler=random.Random(2)), 20_000)
    assert all(0.235 <= share <= 0.265 for share in shares.values()), shares


def test_unblinded_columns_keep_the_picked_order_and_names(box):
    ballot = box.issue("s", VARIANTS, blind=False)
    assert ballot.columns == tuple(VARIANTS) and ballot.label(1) == "lora-a"
    assert box.issue("s", VARIANTS, blind=True).label(1) == column_label(1) == "Model B"


def test_a_vote_names_a_column_and_is_stored_once(box):
    ballot = shown(box, base="Drink water.", **{"lora-a": "Rest."})
    winner_column = ballot.columns.index("lora-a")
    box.vote(ballot.id, "s1", column_label(winner_column), client="1.2.3.4")
    assert box.store.count() == 1 and box.store.records()[0]["winner"] == "lora-a"
    assert box.store.records()[0]["blind"] is True and box.store.records()[0]["variants"] == list(ballot.columns)


@pytest.mark.parametrize(
    ("forge", "message"),
    [
        (lambda b: (b.id, "s1", "Model E"), "not a column of this comparison"),
        (lambda b: (b.id, "s1", "lora-a"), "not a column of this comparison"),  # a name, while names are hidden
        (lambda b: ("0" * 32, "s1", "A"), "unknown to the server"),
        (lambda b: (b.id, "another-session", "A"), "unknown to the server"),
        (lambda b: (b.id, "s1", column_label(b.columns.index("int8"))), "gave no answer"),
    ],
    ids=["no-such-column", "variant-name-in-blind-mode", "forged-id", "other-session", "column-without-answer"],
)
def test_forged_or_out_of_comparison_votes_are_refused_and_stored_nowhere(box, forge, message):
    ballot = shown(box, base="Drink water.", **{"lora-a": "Rest.", "int8": ""})
    with pytest.raises(VoteError, match=message):
        box.vote(*forge(ballot), client="1.2.3.4")
    assert box.store.count() == 0


def test_a_second_vote_is_refused_and_the_first_stays(box):
    ballot = shown(box, base="Drink water.", **{"lora-a": "Rest."})
    box.vote(ballot.id, "s1", TIE, client="c")
    with pytest.raises(VoteError, match="already has a vote"):
        box.vote(ballot.id, "s1", "A", client="c")
    assert box.store.count() == 1 and box.store.records()[0]["winner"] == TIE


def test_comparing_only_unavailable_variants_cannot_be_voted_on(box):
    ballot = box.issue("s1", ["hub-7b", "hub-13b"], blind=False)
    nothing = answers(**{"hub-7b": "", "hub-13b": ""})
    assert not ready_to_vote(nothing)  # the page offers no vote
    with pytest.raises(VoteError, match="Wait until every column has an answer"):
        box.vote(ballot.id, "s1", ALL_BAD, client="c")
    box.show(ballot, Comparison.from_answers("q", "", PRESETS["greedy"], nothing), nothing)  # even if it were offered
    with pytest.raises(VoteError, match="produced no answer"):
        box.vote(ballot.id, "s1", ALL_BAD, client="c")
    assert box.store.count() == 0


def test_voting_opens_when_every_column_has_text_and_stops_the_generation(box):
    streaming = {
        "base": Answer("base", "Drink", "generating"),
        "lora-a": Answer("lora-a", "", "generating"),
    }
    assert not ready_to_vote(streaming)
    streaming["lora-a"] = Answer("lora-a", "Rest", "generating")
    assert ready_to_vote(streaming)
    stopped = []
    ballot = box.issue("s1", list(streaming), blind=False, on_vote=lambda: stopped.append(True))
    box.show(ballot, Comparison.from_answers("q", "", PRESETS["greedy"], streaming), streaming)
    box.vote(ballot.id, "s1", "lora-a", client="c")
    assert stopped == [True] and box.store.records()[0]["answers"] == ["Drink", "Rest"]


def test_the_per_client_vote_cap_refuses_and_stores_nothing(tmp_path):
    box = BallotBox(VoteStore(tmp_path / "votes.sqlite3"), RateLimiter(RateLimit(2, 3600)), random.Random(1))
    for _ in range(2):
        ballot = shown(box, a="x", b="y")
        box.vote(ballot.id, "s1", "A", client="10.0.0.1")
    ballot = shown(box, a="x", b="y")
    with pytest.raises(VoteError, match="Too many requests: at most 2 per 3600 s"):
        box.vote(ballot.id, "s1", "A", client="10.0.0.1")
    assert box.store.count() == 2
    box.vote(ballot.id, "s1", "A", client="10.0.0.2")  # another client, and the refused ballot is still open
    assert box.store.count() == 3


def test_the_vote_cap_reads_its_own_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDALPACA_VOTE_LIMIT", "5/min")
    monkeypatch.setenv("MEDALPACA_RATE_LIMIT", "off")
    assert BallotBox.from_env(VoteStore(tmp_path / "v.sqlite3")).limiter.limit == RateLimit(5, 60)


def test_old_ballots_are_forgotten_beyond_capacity(tmp_path):
    box = BallotBox(VoteStore(tmp_path / "votes.sqlite3"), capacity=3)
    first = box.issue("s", ["a", "b"], blind=False)
    for _ in range(3):
        box.issue("s", ["a", "b"], blind=False)
    with pytest.raises(VoteError, match="unknown to the server"):
        box.get(first.id, "s")
