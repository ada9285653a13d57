"""Log-likelihood evaluation speed: four-option questions per second with the default model.

    .venv/bin/python -m benchmarks.eval_loglik [--questions 100]

Targets: 1,000 four-option questions in under 5 minutes (issue 15), and at least 5 questions/s, 2.5x
the path before (issue 24). The questions are generated (seeded) at MedQA's typical length, about 120
words of stem and four short options, since the real data may not be on the machine; they are scored
with the harness prompt and the paper's (letters: the four read from the prompt's last position) and
with option texts. Each case is measured two ways in the same run, chunk by chunk in turn, so the
ratio holds even on a shared machine: ``QUESTIONS_PER_PASS`` questions a pass in full rows (every
option its own prompt + option row: what ``eval`` did before the shared prompt), and the same questions
a pass with each prompt run once and its options scored from its KV cache (what ``eval`` does). The
rows measure ``--questions`` of them and extrapolate to 1,000, and say so, with the machine's load.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass

from benchmarks.common import Row, whole_number_options
from medalpaca_core.engine import Studio
from medalpaca_core.evaluation.exams import Question
from medalpaca_core.evaluation.loglik import Asked, loglik_many
from medalpaca_core.evaluation.prompt import PromptStyle
from medalpaca_core.evaluation.runner import QUESTIONS_PER_PASS

VARIANT = "smol-base"
TARGET_QUESTIONS, TARGET_SECONDS = 1000, 300
TARGET_RATE = 5  # questions/s (issue 24)
VOCABULARY = (  # words of MedQA-style stems, drawn at random: the length matters here, not the sense
    "patient year old man woman presents with fever cough pain chest abdominal history of hypertension diabetes "
    "smoking examination shows blood pressure pulse temperature laboratory studies serum creatinine sodium "
    "potassium hemoglobin leukocyte count urine culture radiograph reveals consolidation effusion murmur which "
    "of the following is the most likely diagnosis next best step in management mechanism of action"
)
WORDS = VOCABULARY.split()


def generated_questions(count: int, seed: int = 0) -> list[Question]:
    """``count`` four-option questions of MedQA's length (stems of ~120 words), deterministic."""
    rng = random.Random(seed)
    questions = []
    for number in range(1, count + 1):
        stem = " ".join(rng.choice(WORDS) for _ in range(120)).capitalize() + "?"
        options = {letter: " ".join(rng.choice(WORDS) for _ in range(3)) for letter in "ABCD"}
        questions.append(Question("generated", number, stem, options, rng.choice("ABCD")))
    return questions


@dataclass(frozen=True)
class ScoringPath:
    """One way of scoring: questions per ``loglik_many`` call, and whether prompts are shared by their options."""

    label: str
    per_pass: int
    shared_prompt: bool


PATHS = (
    ScoringPath(f"{QUESTIONS_PER_PASS} questions a pass", QUESTIONS_PER_PASS, shared_prompt=False),
    ScoringPath(f"{QUESTIONS_PER_PASS} questions a pass, shared prompt", QUESTIONS_PER_PASS, shared_prompt=True),
)
DETAILS = {
    PATHS[0]: "full rows (each option its own prompt + option row; letters read from the prompt's last position), "
    "as eval scored until the shared prompt",
    PATHS[1]: "each prompt once, the options' tokens after its KV cache (eval now)",
}


def timed(asked: list[Asked], studio: Studio, path: ScoringPath, choice: str) -> float:
    """Seconds to score ``asked`` along ``path``."""
    started = time.perf_counter()
    for first in range(0, len(asked), path.per_pass):
        chunk = asked[first : first + path.per_pass]
        for _, errors in loglik_many(studio, chunk, [VARIANT], choice, shared_prompt=path.shared_prompt):
            if errors:
                raise RuntimeError(errors[VARIANT])
    return time.perf_counter() - started


def measure(questions: list[Question], style: PromptStyle, studio: Studio, choice: str) -> dict[ScoringPath, float]:
    """Questions per second along every path, after a one-question warm-up of each (the model load is not
    counted). Every chunk of questions runs along each path in turn, in reversed order every other chunk,
    so that a drift in the machine's load hits the paths alike."""
    asked = [(question, style) for question in questions]
    for path in PATHS:
        timed(asked[:1], studio, path, choice)
    seconds = dict.fromkeys(PATHS, 0.0)
    for number, first in enumerate(range(0, len(asked), QUESTIONS_PER_PASS)):
        for path in PATHS[:: -1 if number % 2 else 1]:
            seconds[path] += timed(asked[first : first + QUESTIONS_PER_PASS], studio, path, choice)
    return {path: len(asked) / elapsed for path, elapsed in seconds.items()}


CASES = (  # (label, prompt style, choice)
    ("harness prompt, letters", PromptStyle("harness", "medqa"), "letter"),
    ("paper prompt, letters", PromptStyle(), "letter"),
    ("paper prompt, option texts", PromptStyle(), "text"),
)


def _row(label: str, path: ScoringPath, rates: dict[ScoringPath, float], count: int, load: str) -> Row:
    rate = rates[path]
    minutes = TARGET_QUESTIONS / rate / 60
    verdict = "meets" if TARGET_QUESTIONS / rate < TARGET_SECONDS else "misses"
    target = "meets" if rate >= TARGET_RATE else "misses"
    earlier = PATHS[: PATHS.index(path)]
    ratios = "".join(f"; {rate / rates[other]:.2f}x {other.label}" for other in earlier) + (
        ", same run" * bool(earlier)
    )
    return Row(
        "evaluation",
        f"loglik, {label}, {path.label} ({VARIANT})",
        f"{rate:.2f} questions/s",
        f"{DETAILS[path]}; {count} generated ~120-word 4-option questions, extrapolated: 1,000 in {minutes:.1f} min "
        f"({verdict} the 5 min target; {target} {TARGET_RATE} questions/s){ratios}; {load}",
        f"python -m benchmarks.eval_loglik --questions {count}",
    )


def rows(count: int = 100) -> list[Row]:
    studio = Studio()
    questions = generated_questions(count)
    measured = {label: measure(questions, style, studio, choice) for label, style, choice in CASES}
    load = f"15-minute load average {os.getloadavg()[2]:.1f} at the end of the run on {os.cpu_count()} cores"
    return [_row(label, path, rates, count, load) for label, rates in measured.items() for path in PATHS]


def main() -> None:
    table = rows(whole_number_options(__doc__, questions=100).questions)
    print("\n".join(row.table_line() for row in table))


if __name__ == "__main__":
    main()
