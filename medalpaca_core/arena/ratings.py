"""Ratings from preference votes: Bradley–Terry strengths on an Elo-like scale, with bootstrap intervals.

Raw win counts reward a variant for being shown often or against weak company. Bradley–Terry
(Chatbot Arena's model) explains every pairwise outcome by one strength per variant,
P(i beats j) = p_i / (p_i + p_j), and reports 1000 + 400·log10(p_i): 400 points apart means
10:1 odds. A vote picks the best of the K answers shown, which is K−1 pairwise wins of the chosen
variant; "tie" and "all bad" are ties among every pair shown, and a tie counts half a win each way.

The fit is maximum likelihood by Hunter's MM algorithm (2004, "MM algorithms for generalized
Bradley–Terry models"): each step provably raises the likelihood, so there is no step size to
tune. One virtual tie per variant, spread over all its possible opponents, keeps an undefeated
variant finite (its maximum likelihood would be infinite) and weighs nothing against real votes.
Ratings are centred on a mean of 1000.

Intervals come from the bootstrap: votes (not pairwise outcomes, which share a vote) are drawn
with replacement, ``resamples`` times with a fixed seed, and every draw is refitted; the 2.5th
and 97.5th percentiles bound the 95% interval. Identical votes are counted once with a
multiplicity, so 100,000 votes cost no more than the few thousand distinct ones among them, and a
resample draws each vote Poisson(1) times (the Poisson bootstrap, which matches drawing n of n
with replacement for all but tiny n; Hanley & MacGibbon 2006): Poisson(copies) per distinct vote.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

TIE = "tie"
ALL_BAD = "all-bad"  # no answer was acceptable: a tie among all shown, for the ratings
DRAWS = (TIE, ALL_BAD)
BASE_RATING = 1000.0
SCALE = 400.0  # rating points per factor of 10 in strength (Elo's convention)


class RatingError(ValueError):
    """Votes that cannot be rated at all; the message says why."""


@dataclass(frozen=True)
class Vote:
    """One best-of-K judgement: the variants shown (in shown order) and the winner, TIE or ALL_BAD."""

    variants: tuple[str, ...]
    winner: str

    def check(self) -> Vote:
        """Raise RatingError unless the variants are distinct ids and the winner is one of them or a draw."""
        if not self.variants or not all(isinstance(v, str) and v for v in self.variants):
            raise RatingError("'variants' must be a non-empty list of variant ids")
        if len(set(self.variants)) != len(self.variants):
            raise RatingError(f"'variants' lists a variant twice: {list(self.variants)}")
        if self.winner not in self.variants and self.winner not in DRAWS:
            raise RatingError(
                f"the winner {self.winner!r} is not one of the variants shown ({', '.join(self.variants)}), "
                f"nor {TIE!r} or {ALL_BAD!r}"
            )
        return self


@dataclass(frozen=True)
class FitSettings:
    """How ratings are fitted: bootstrap resamples, their seed, the prior's weight and the MM stopping rule."""

    resamples: int = 200
    seed: int = 0
    prior_ties: float = 1.0  # virtual ties per variant, spread evenly over every other variant
    tolerance: float = 1e-9  # largest change of any log-strength between two MM steps at convergence
    max_iterations: int = 20_000


@dataclass(frozen=True)
class Rating:
    """One leaderboard row: the rating, its 95% interval, the votes that showed the variant, its pairwise win rate."""

    variant: str
    rating: float
    ci_low: float
    ci_high: float
    votes: int
    win_rate: float  # share of its pairwise outcomes won, ties counting half

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "variant": self.variant,
            "rating": round(self.rating, 1),
            "ci_low": round(self.ci_low, 1),
            "ci_high": round(self.ci_high, 1),
            "votes": self.votes,
        }


@dataclass(frozen=True)
class Leaderboard:
    """Ratings sorted best first, the pairwise win-rate matrix and notes on anything that could not be rated."""

    ratings: list[Rating]
    win_rates: dict[str, dict[str, float | None]]  # win_rates[i][j]: share of i-vs-j outcomes i won; None: never met
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Outcomes:
    """Distinct votes as pairwise wins: entry e adds ``weight[e]`` wins of ``row[e]`` over ``col[e]`` per copy of
    pattern ``pattern[e]``; ``copies[p]`` is how often distinct vote p occurs."""

    variants: list[str]
    copies: np.ndarray
    pattern: np.ndarray
    row: np.ndarray
    col: np.ndarray
    weight: np.ndarray

    def wins(self, copies: np.ndarray) -> np.ndarray:
        """Win matrices, ``wins[r, i, j]`` = wins of i over j, for each row of ``copies`` (resamples x patterns)."""
        size = len(self.variants)
        cells = self.row * size + self.col
        matrices = [np.bincount(cells, self.weight * counts[self.pattern], size * size) for counts in copies]
        return np.stack(matrices).reshape(len(copies), size, size)


def pairwise(vote: Vote) -> list[tuple[str, str, float]]:
    """A vote as (winner, loser, wins): K−1 wins for a chosen variant, half a win each way per pair for a draw."""
    if vote.winner in DRAWS:
        return [(a, b, 0.5) for a in vote.variants for b in vote.variants if a != b]
    return [(vote.winner, other, 1.0) for other in vote.variants if other != vote.winner]


def outcomes(votes: Iterable[Vote]) -> Outcomes:
    """Count distinct votes (shown order does not matter to a rating) and spell each out as pairwise wins."""
    distinct = Counter((tuple(sorted(vote.variants)), vote.winner) for vote in votes)
    variants = sorted({ident for shown, _ in distinct for ident in shown})
    index = {ident: n for n, ident in enumerate(variants)}
    pattern, row, col, weight = [], [], [], []
    for p, (shown, winner) in enumerate(distinct):
        for a, b, w in pairwise(Vote(shown, winner)):
            pattern.append(p)
            row.append(index[a])
            col.append(index[b])
            weight.append(w)
    return Outcomes(
        variants,
        np.array(list(distinct.values()), dtype=float),
        np.array(pattern, dtype=np.int64),
        np.array(row, dtype=np.int64),
        np.array(col, dtype=np.int64),
        np.array(weight, dtype=float),
    )


def fit_strengths(wins: np.ndarray, settings: FitSettings) -> np.ndarray:
    """Log10-strengths maximising the Bradley–Terry likelihood of each win matrix in ``wins`` (batch x V x V).

    MM step (Hunter 2004, eq. 3): p_i <- W_i / sum_j N_ij / (p_i + p_j), with W_i the wins of i and N_ij
    the games of i and j, the prior's virtual ties included; then the strengths are divided by their
    geometric mean (the likelihood only sees ratios, and a fixed scale lets the steps converge fast).
    """
    size = wins.shape[1]
    virtual = settings.prior_ties / max(size - 1, 1) * (1 - np.eye(size))  # a/(V-1) games with every other variant
    games = wins + wins.transpose(0, 2, 1) + virtual
    won = wins.sum(axis=2) + settings.prior_ties / 2
    log_strength = np.zeros(wins.shape[:2])
    for _ in range(settings.max_iterations):
        strength = np.exp(log_strength)
        denominator = (games / (strength[:, :, None] + strength[:, None, :])).sum(axis=2)
        updated = np.log(won / denominator)
        updated -= updated.mean(axis=1, keepdims=True)
        change = np.abs(updated - log_strength).max()
        log_strength = updated
        if change < settings.tolerance:
            break
    return log_strength / math.log(10)


def elo_scale(log_strengths: np.ndarray) -> np.ndarray:
    """1000 + 400·log10(p), centred so that the variants' mean rating is 1000."""
    points = SCALE * log_strengths
    return BASE_RATING + points - points.mean(axis=-1, keepdims=True)


def win_rate_matrix(variants: list[str], wins: np.ndarray) -> dict[str, dict[str, float | None]]:
    games = wins + wins.T
    return {
        a: {b: (float(wins[i, j] / games[i, j]) if games[i, j] > 0 else None) for j, b in enumerate(variants) if b != a}
        for i, a in enumerate(variants)
    }


def groups(variants: list[str], games: np.ndarray) -> list[list[str]]:
    """Variants split into groups connected by games: ratings in different groups are not comparable."""
    unvisited, found = set(range(len(variants))), []
    while unvisited:
        stack, group = [min(unvisited)], set()
        while stack:
            node = stack.pop()
            if node in group:
                continue
            group.add(node)
            stack.extend(int(j) for j in np.flatnonzero(games[node]) if j not in group)
        unvisited -= group
        found.append(sorted(variants[n] for n in group))
    return found


def intervals(outcome: Outcomes, settings: FitSettings) -> np.ndarray:
    """2.5th and 97.5th percentile ratings over seeded bootstrap resamples of the votes (2 x V)."""
    rng = np.random.default_rng(settings.seed)
    draws = rng.poisson(outcome.copies, size=(settings.resamples, len(outcome.copies))).astype(float)
    wins = outcome.wins(draws)
    ratings = elo_scale(fit_strengths(wins, settings))
    played = (wins + wins.transpose(0, 2, 1)).sum(axis=2) > 0
    ratings[~played] = np.nan  # a variant absent from a resample says nothing about its uncertainty
    with np.errstate(all="ignore"):
        return np.nanpercentile(ratings, [2.5, 97.5], axis=0) if played.any() else np.full((2, wins.shape[1]), np.nan)


def notes_for(shown_alone: Sequence[str], variant_groups: list[list[str]], all_draws: bool) -> list[str]:
    notes = []
    if shown_alone:
        notes.append(f"Not rated, never compared with another variant: {', '.join(sorted(shown_alone))}.")
    if len(variant_groups) > 1:
        listed = "; ".join(", ".join(group) for group in variant_groups)
        notes.append(f"These groups never met one another, so ratings across groups are not comparable: {listed}.")
    if all_draws:
        notes.append("Every vote is a tie or 'all bad': no variant is preferred to another, so all ratings are equal.")
    return notes


def leaderboard(votes: Iterable[Vote], settings: FitSettings | None = None) -> Leaderboard:
    """Bradley–Terry ratings, 95% bootstrap intervals and win rates from ``votes`` (checked one by one)."""
    settings = settings or FitSettings()
    if settings.resamples < 1:
        raise RatingError("the bootstrap needs at least one resample")
    votes = [vote.check() for vote in votes]
    if not votes:
        return Leaderboard([], {}, ["No votes yet: nothing to rate."])
    shown = Counter(ident for vote in votes for ident in vote.variants)
    contested = [vote for vote in votes if len(vote.variants) > 1]
    met = {ident for vote in contested for ident in vote.variants}
    alone = [ident for ident in shown if ident not in met]
    if not contested:
        return Leaderboard([], {}, notes_for(alone, [], False))
    outcome = outcomes(contested)
    wins = outcome.wins(outcome.copies[None, :])
    ratings = elo_scale(fit_strengths(wins, settings))[0]
    low, high = intervals(outcome, settings)
    games = wins[0] + wins[0].T
    rows = []
    for n, ident in enumerate(outcome.variants):
        point = float(ratings[n])
        # No finite percentile only when the variant sat out every resample: its interval is then the point.
        lo, hi = (low[n], high[n]) if math.isfinite(low[n]) and math.isfinite(high[n]) else (point, point)
        rate = float(wins[0, n].sum() / games[n].sum())
        rows.append(Rating(ident, point, float(min(lo, point)), float(max(hi, point)), shown[ident], rate))
    rows.sort(key=lambda r: (-r.rating, r.variant))
    all_draws = all(vote.winner in DRAWS for vote in contested)
    notes = notes_for(alone, groups(outcome.variants, games), all_draws)
    return Leaderboard(rows, win_rate_matrix(outcome.variants, wins[0]), notes)
