"""Bradley–Terry ratings: the fit against closed forms, recovery of known strengths, intervals' coverage, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.ratings import synthetic_votes
from medalpaca_core.arena.leaderboard import chart, rows
from medalpaca_core.arena.ratings import (
    ALL_BAD,
    TIE,
    FitSettings,
    RatingError,
    Vote,
    fit_strengths,
    leaderboard,
    outcomes,
    pairwise,
)

TRUE = {"a": 1180.0, "b": 1090.0, "c": 1000.0, "d": 910.0, "e": 820.0}  # mean 1000, 90 points apart


def luce_votes(true: dict[str, float], count: int, rng: np.random.Generator) -> list[Vote]:
    """Best-of-K votes as Bradley–Terry (Luce's choice axiom) predicts: P(i chosen) = p_i / sum of shown p."""
    return synthetic_votes(count, true, rng)


def test_a_best_of_k_vote_is_k_minus_1_wins_and_a_draw_ties_every_pair():
    assert pairwise(Vote(("a", "b", "c"), "b")) == [("b", "a", 1.0), ("b", "c", 1.0)]
    for draw in (TIE, ALL_BAD):
        assert sorted(pairwise(Vote(("a", "b", "c"), draw))) == [(x, y, 0.5) for x in "abc" for y in "abc" if x != y]


def test_two_variants_match_the_closed_form():
    """With two variants the likelihood's maximum is known: strength ratio = wins ratio (prior's half wins included)."""
    votes = [Vote(("a", "b"), "a")] * 30 + [Vote(("b", "a"), "b")] * 10
    board = {r.variant: r for r in leaderboard(votes).ratings}
    expected = 400 * math.log10(30.5 / 10.5)
    assert board["a"].rating - board["b"].rating == pytest.approx(expected, abs=1e-6)
    assert board["a"].rating + board["b"].rating == pytest.approx(2000)
    assert board["a"].win_rate == pytest.approx(0.75) and board["a"].votes == 40


def test_the_fit_solves_the_likelihood_equations():
    """At the maximum, each variant's wins equal its expected wins (Hunter 2004): the fit is the MLE, not just close."""
    outcome = outcomes(luce_votes(TRUE, 300, np.random.default_rng(3)))
    wins = outcome.wins(outcome.copies[None, :])
    settings = FitSettings(prior_ties=0.0, tolerance=1e-12)
    strength = 10 ** fit_strengths(wins, settings)[0]
    games = wins[0] + wins[0].T
    expected = (games * strength[:, None] / (strength[:, None] + strength[None, :])).sum(axis=1)
    assert expected == pytest.approx(wins[0].sum(axis=1), rel=1e-6)


def test_known_strengths_are_recovered_in_order_and_the_intervals_cover_them():
    """Over 10 draws of 1,200 votes: the order is right, and the 95% intervals cover the truth >= 90% of the time."""
    covered = total = 0
    for draw in range(10):
        board = leaderboard(luce_votes(TRUE, 1200, np.random.default_rng(100 + draw)), FitSettings(seed=draw))
        assert [r.variant for r in board.ratings] == list(TRUE), board.ratings
        for rating in board.ratings:
            assert rating.ci_low <= rating.rating <= rating.ci_high
            covered += rating.ci_low <= TRUE[rating.variant] <= rating.ci_high
            total += 1
    assert covered / total >= 0.9, f"coverage {covered}/{total}"


def test_the_bootstrap_is_seeded():
    votes = luce_votes(TRUE, 200, np.random.default_rng(0))
    assert leaderboard(votes, FitSettings(seed=5)) == leaderboard(votes, FitSettings(seed=5))
    assert leaderboard(votes, FitSettings(seed=5)).ratings != leaderboard(votes, FitSettings(seed=6)).ratings


def test_win_rate_matrix_counts_ties_half_and_leaves_pairs_that_never_met_empty():
    votes = [Vote(("a", "b"), "a"), Vote(("a", "b"), TIE), Vote(("b", "c"), "c")]
    board = leaderboard(votes)
    assert board.win_rates["a"]["b"] == pytest.approx(0.75) and board.win_rates["b"]["a"] == pytest.approx(0.25)
    assert board.win_rates["a"]["c"] is None and board.win_rates["c"]["b"] == 1.0


def test_an_undefeated_variant_gets_a_finite_rating():
    board = leaderboard([Vote(("a", "b"), "a")] * 5 + [Vote(("b", "c"), "b")] * 5)
    assert [r.variant for r in board.ratings] == ["a", "b", "c"]
    assert all(math.isfinite(v) for r in board.ratings for v in (r.rating, r.ci_low, r.ci_high))


def test_no_votes_single_variants_all_ties_and_separate_groups_get_notes_not_nan():
    assert leaderboard([]).notes == ["No votes yet: nothing to rate."]
    alone = leaderboard([Vote(("a",), "a")])
    assert alone.ratings == [] and "never compared with another variant: a" in alone.notes[0]
    mixed = leaderboard([Vote(("a",), "a"), Vote(("b", "c"), "b")])
    assert [r.variant for r in mixed.ratings] == ["b", "c"] and "never compared with another variant: a" in mixed.notes[
        0
    ]
    ties = leaderboard([Vote(("a", "b"), TIE), Vote(("b", "c", "a"), ALL_BAD)])
    assert [r.rating for r in ties.ratings] == pytest.approx([1000] * 3) and "Every vote is a tie" in ties.notes[-1]
    apart = leaderboard([Vote(("a", "b"), "a"), Vote(("c", "d"), "d")])
    assert "never met one another" in apart.notes[0] and "a, b; c, d" in apart.notes[0]
    for board in (mixed, ties, apart):
        assert all(math.isfinite(v) for r in board.ratings for v in (r.rating, r.ci_low, r.ci_high))


@pytest.mark.parametrize(
    ("vote", "message"),
    [
        (Vote(("a", "b"), "c"), r"winner 'c' is not one of the variants shown \(a, b\)"),
        (Vote(("a", "a"), "a"), "lists a variant twice"),
        (Vote((), TIE), "non-empty list"),
        (Vote(("a", ""), TIE), "non-empty list"),
    ],
)
def test_malformed_votes_are_refused_with_a_message(vote, message):
    with pytest.raises(RatingError, match=message):
        leaderboard([vote])


def test_leaderboard_rows_and_chart():
    board = leaderboard([Vote(("a", "b"), "a")] * 6 + [Vote(("a", "b"), "b")] * 2)
    assert [row[0] for row in rows(board)] == ["a", "b"] and rows(board)[0][4] == "75%"
    low, high = (float(x) for x in rows(board)[0][2].split(" to "))
    assert low <= float(rows(board)[0][1]) <= high
    axes = chart(board).axes[0]
    assert [label.get_text() for label in axes.get_yticklabels()] == ["b (8 votes)", "a (8 votes)"]  # best at the top
    assert chart(leaderboard([])).axes[0].get_title() == "No ratings yet: a variant is rated after 5 votes"


def test_a_variant_is_rated_only_after_a_few_votes_and_its_row_says_how_many_it_has():
    board = leaderboard([Vote(("a", "b"), "a")] * 4 + [Vote(("a", "c"), "c")])
    by_variant = {row[0]: row for row in rows(board)}
    assert by_variant["b"][1:4] == ["–", "after 5 votes", "4"] and by_variant["c"][1:4] == ["–", "after 5 votes", "1"]
    assert by_variant["a"][1] != "–" and " to " in by_variant["a"][2] and by_variant["a"][3] == "5"
    assert [label.get_text() for label in chart(board).axes[0].get_yticklabels()] == ["a (5 votes)"]
