"""Scoring: the answer letter in a response, accuracy with a 95% interval, and the parse rate.

The medAlpaca repository only decided whether a response *looked* answered (``^[A-Z](:|\\.|) .+``)
and never counted. Here the letter is read from the start of the response in the same way,
tolerant of "A)", "(A)", "**A**" and a bare "A", with two corrections that keep small models
from scoring by accident: a letter that is not one of the question's options ("I think ...")
is unparsed, and so is a letter followed only by a space unless that option's own text follows
-- under the paper's rule an echoed question ("A 56-year-old man ...") or any sentence opening
with "A" counted as answer A. Every response is kept in the results so that scores can be audited.

Accuracies on a few dozen questions are noisy, so every score carries a Wilson 95% interval
(sound at 0 or n correct, unlike the normal approximation) and the chance level of its questions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

ANSWER_START = re.compile(r"^[\s*_\"'`]*(\()?([A-Z])(\)|:|\.|\*\*[:.]?)?(?=\s|$)")
Z_95 = 1.959963984540054
ALL_STEPS = "all"


def _first_word(text: str) -> str:
    words = re.findall(r"\w+", text.lower())
    return words[0] if words else ""


def parse_letter(response: str, options: Mapping[str, str]) -> str | None:
    """The option letter a response starts with, or None when it does not clearly start with one."""
    match = ANSWER_START.match(response)
    if match is None or match.group(2) not in options:
        return None
    letter, rest = match.group(2), response[match.end() :]
    separated = match.group(1) or match.group(3) or not rest.strip() or rest.lstrip(" \t").startswith("\n")
    if separated or _first_word(rest) == _first_word(options[letter]):
        return letter
    return None


def wilson_interval(correct: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of ``correct`` successes in ``n`` trials."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Score:
    """Accuracy of one variant, mode and step; unparsed answers count as wrong."""

    n: int
    correct: int
    parsed: int
    chance: float  # expected accuracy of guessing uniformly among each question's options

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.correct, self.n)

    @property
    def parse_rate(self) -> float:
        return self.parsed / self.n if self.n else 0.0

    def as_dict(self) -> dict[str, Any]:
        low, high = self.interval
        return {
            "n": self.n,
            "correct": self.correct,
            "accuracy": round(self.accuracy, 4),
            "ci95": [round(low, 4), round(high, 4)],
            "parse_rate": round(self.parse_rate, 4),
            "chance": round(self.chance, 4),
        }


def score(records: Iterable[Mapping[str, Any]], norm: bool = False) -> Score:
    """Score records with ``correct``, ``parsed`` (letter or None) and ``n_options``; ``norm``: loglik's acc_norm."""
    records = list(records)
    return Score(
        n=len(records),
        correct=sum(bool(r["correct_norm" if norm else "correct"]) for r in records),
        parsed=sum(r["parsed"] is not None for r in records),
        chance=sum(1 / r["n_options"] for r in records) / len(records) if records else 0.0,
    )


def score_by_step(records: Iterable[Mapping[str, Any]], norm: bool = False) -> dict[str, Score]:
    """One score per step in order of appearance, then ``all`` over every question."""
    records = list(records)
    steps = dict.fromkeys(r["step"] for r in records)
    scores = {step: score((r for r in records if r["step"] == step), norm) for step in steps}
    scores[ALL_STEPS] = score(records, norm)
    return scores
