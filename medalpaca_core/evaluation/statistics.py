"""Whether a difference is real: McNemar's exact test, calibration, and position bias.

Two variants asked the same 100 questions disagree on only some of them; whether "A beats B by
4 points" means anything depends on those discordant questions alone (A right and B wrong, or
the reverse), which McNemar's exact test weighs: under "no difference" each discordant question
is a fair coin, so the p-value is the two-sided binomial tail of the smaller count.

From the log-likelihood mode's option probabilities (renormalised over the options), the Brier
score (mean squared distance to the one-hot answer; 0.75 for a uniform guess over 4 options) and
the expected calibration error (how far confidence is from accuracy, over 10 equal-width bins)
tell whether a model's confidence can be trusted. Position bias asks whether a model picks a
letter rather than an answer: with options rotated through every position, a model that knows
the answer follows it and one that likes "A" stays on A.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

Record = Mapping[str, Any]
ECE_BINS = 10
BIAS_MARGIN = 0.2  # a position must be picked this much more often than expected ...
BIAS_ALPHA = 0.01  # ... and significantly so (one-sided binomial), to be flagged


def _log_binomial(n: int, k: int, p: float) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * math.log(p) + (n - k) * math.log1p(-p)


def binomial_upper_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    return min(1.0, sum(math.exp(_log_binomial(n, i, p)) for i in range(k, n + 1)))


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """McNemar's exact p-value: the two-sided binomial test of the discordant counts against 1/2."""
    n = a_only + b_only
    if n == 0:
        return 1.0
    return min(1.0, 2 * binomial_upper_tail(max(a_only, b_only), n, 0.5))


@dataclass(frozen=True)
class Comparison:
    """Two runs on the questions both answered: who alone was right how often, and McNemar's p."""

    a: str
    b: str
    n: int
    a_only: int  # questions a answered correctly and b did not
    b_only: int
    p_value: float

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "p_value": round(self.p_value, 6)}


def compare(a: str, b: str, records_a: Iterable[Record], records_b: Iterable[Record]) -> Comparison:
    right_a = {r["question"]: bool(r["correct"]) for r in records_a}
    right_b = {r["question"]: bool(r["correct"]) for r in records_b}
    common = right_a.keys() & right_b.keys()
    a_only = sum(right_a[q] and not right_b[q] for q in common)
    b_only = sum(right_b[q] and not right_a[q] for q in common)
    return Comparison(a, b, len(common), a_only, b_only, mcnemar_exact(a_only, b_only))


def pairwise(runs: Mapping[str, Sequence[Record]]) -> list[Comparison]:
    """McNemar for every pair of runs (label -> records) that share questions."""
    labels = list(runs)
    pairs = [compare(a, b, runs[a], runs[b]) for i, a in enumerate(labels) for b in labels[i + 1 :]]
    return [pair for pair in pairs if pair.n]


def _with_probabilities(records: Iterable[Record]) -> list[Record]:
    return [r for r in records if r.get("probabilities")]


def brier_score(records: Iterable[Record]) -> float | None:
    """Mean over questions of the squared distance between option probabilities and the answer."""
    scored = _with_probabilities(records)
    if not scored:
        return None
    total = sum(sum((p - (letter == r["answer"])) ** 2 for letter, p in r["probabilities"].items()) for r in scored)
    return total / len(scored)


@dataclass(frozen=True)
class Bin:
    low: float
    high: float
    n: int
    confidence: float  # mean probability of the picked option
    accuracy: float


def reliability(records: Iterable[Record], bins: int = ECE_BINS) -> tuple[float | None, list[Bin]]:
    """Expected calibration error and its bins: confidence (top option probability) against accuracy."""
    scored = _with_probabilities(records)
    if not scored:
        return None, []
    grouped: dict[int, list[tuple[float, bool]]] = {}
    for r in scored:
        letter, confidence = max(r["probabilities"].items(), key=lambda item: item[1])
        grouped.setdefault(min(bins - 1, int(confidence * bins)), []).append((confidence, letter == r["answer"]))
    result = []
    for index in sorted(grouped):
        members = grouped[index]
        confidence = sum(c for c, _ in members) / len(members)
        accuracy = sum(ok for _, ok in members) / len(members)
        result.append(Bin(index / bins, (index + 1) / bins, len(members), confidence, accuracy))
    ece = sum(b.n * abs(b.confidence - b.accuracy) for b in result) / len(scored)
    return ece, result


@dataclass(frozen=True)
class PositionBias:
    """How often each option position was picked, against how often it would be by answering right."""

    shares: dict[str, float]
    top: str
    expected: float  # the top position's share among the correct answers asked
    p_value: float
    flagged: bool
    picks: int
    consistency: float | None  # share of questions answered alike under every rotation (None: not rotated)

    def summary(self) -> str:
        text = f"answers {self.top} {self.shares[self.top]:.0%} of the time (expected {self.expected:.0%})"
        if self.consistency is not None:
            text += f"; same answer under every rotation for {self.consistency:.0%} of questions"
        return text + (" — position-biased" if self.flagged else "")


def _positions(records: Sequence[Record]) -> tuple[list[str], list[str]]:
    """Picked positions and the positions of the right answers, over rotations when there are some."""
    picked, gold = [], []
    for r in records:
        if r.get("rotations"):
            picked += [rotation["position"] for rotation in r["rotations"]]
            gold += [rotation["answer"] for rotation in r["rotations"]]
        elif r.get("parsed") is not None:
            picked.append(r["parsed"])
            gold.append(r["answer"])
    return picked, gold


def position_bias(records: Sequence[Record]) -> PositionBias | None:
    """The most-picked position, flagged when picked far and significantly more often than expected."""
    picked, gold = _positions(records)
    if not picked:
        return None
    counts = Counter(picked)
    top, count = counts.most_common(1)[0]
    expected = Counter(gold)[top] / len(gold)
    p_value = binomial_upper_tail(count, len(picked), expected)
    share = count / len(picked)
    flagged = share >= expected + BIAS_MARGIN and p_value < BIAS_ALPHA
    rotated = [r for r in records if r.get("rotations")]
    consistency = (
        sum(len({rotation["picked"] for rotation in r["rotations"]}) == 1 for r in rotated) / len(rotated)
        if rotated
        else None
    )
    shares = {letter: counts[letter] / len(picked) for letter in sorted(counts)}
    return PositionBias(shares, top, expected, p_value, flagged, len(picked), consistency)


def run_statistics(runs: Mapping[str, Sequence[Record]]) -> dict[str, Any]:
    """Everything above for a set of runs (label -> records), as JSON-ready data."""
    calibration, bias = {}, {}
    for label, records in runs.items():
        brier = brier_score(records)
        if brier is not None:
            ece, bins = reliability(records)
            calibration[label] = {
                "brier": round(brier, 4),
                "ece": round(ece or 0.0, 4),
                "bins": [asdict(b) for b in bins],
            }
        found = position_bias(records)
        if found is not None:
            bias[label] = {**asdict(found), "summary": found.summary()}
    return {
        "mcnemar": [pair.as_dict() for pair in pairwise(runs)],
        "calibration": calibration,
        "position_bias": bias,
    }
