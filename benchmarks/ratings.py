"""Fitting Bradley–Terry ratings with bootstrap intervals: 100,000 votes over 20 variants, 200 resamples.

    .venv/bin/python -m benchmarks.ratings

Votes are drawn from known strengths (best of 2 to 4 shown, as the Compare tab takes them); the
row reports the wall time of ``ratings.leaderboard`` (issue 12's target: under 10 s), its CPU time
(wall time on a shared machine includes waiting for a core) and how far the fitted ratings land
from the true ones.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.common import Row
from medalpaca_core.arena.ratings import FitSettings, Vote, leaderboard

VOTES, VARIANTS, RESAMPLES = 100_000, 20, 200
COMMAND = "python -m benchmarks.ratings"


def synthetic_votes(count: int, true: dict[str, float], rng: np.random.Generator) -> list[Vote]:
    """Best-of-K votes as Bradley–Terry predicts them: P(i chosen) = p_i / sum of the shown p."""
    names = list(true)
    strength = 10 ** ((np.array(list(true.values())) - 1000) / 400)
    votes = []
    for _ in range(count):
        shown = rng.choice(len(names), size=rng.integers(2, 5), replace=False)
        chosen = rng.choice(shown, p=strength[shown] / strength[shown].sum())
        votes.append(Vote(tuple(names[i] for i in shown), names[chosen]))
    return votes


def rows() -> list[Row]:
    true = {f"variant-{n:02}": 1000 + 30 * (n - (VARIANTS - 1) / 2) for n in range(VARIANTS)}
    votes = synthetic_votes(VOTES, true, np.random.default_rng(0))
    started, cpu = time.perf_counter(), time.process_time()
    board = leaderboard(votes, FitSettings(resamples=RESAMPLES))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    error = max(abs(r.rating - true[r.variant]) for r in board.ratings)
    covered = sum(r.ci_low <= true[r.variant] <= r.ci_high for r in board.ratings)
    width = np.median([r.ci_high - r.ci_low for r in board.ratings])
    detail = (
        f"{VOTES:,} votes (best of 2-4), {VARIANTS} variants, {RESAMPLES} bootstrap resamples; {cpu:.2f} s CPU; "
        f"largest error "
        f"{error:.1f} points; {covered}/{VARIANTS} 95% intervals cover the truth (median width {width:.0f})"
    )
    return [Row("ratings", "Bradley–Terry fit + bootstrap intervals", f"{elapsed:.2f} s", detail, COMMAND)]


def main() -> None:
    for row in rows():
        print(f"{row.section:13} {row.name:45} {row.value:24} {row.detail}")


if __name__ == "__main__":
    main()
