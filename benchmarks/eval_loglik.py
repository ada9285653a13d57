"""Log-likelihood evaluation speed: four-option questions per second with the default model.

    .venv/bin/python -m benchmarks.eval_loglik [--questions 100]

Targets: 1,000 four-option questions in under 5 minutes (issue 15), and at least 5 questions/s, 2.5x
the one-question-a-call path (issue 24). The questions are generated (seeded) at MedQA's typical
length, about 120 words of stem and four short options, since the real data may not be on the
machine; they are scored with the harness prompt and the paper's (letters: the four read from the
prompt's last position) and with option texts (one row per option). Each case is measured both ways
in the same run, one question a call (the path before batching) and ``QUESTIONS_PER_PASS`` questions
in one forward pass (what ``eval`` does), so the ratio holds even on a shared machine. The rows
measure ``--questions`` of them and extrapolate to 1,000, and say so.
"""

from __future__ import annotations

import random
import time

from benchmarks.common import Row, whole_number_options
from medalpaca_core.engine import Studio
from medalpaca_core.evaluation.exams import Question
from medalpaca_core.evaluation.loglik import loglik_many, loglik_records
from medalpaca_core.evaluation.prompt import PromptStyle
from medalpaca_core.evaluation.runner import QUESTIONS_PER_PASS

VARIANT = "smol-base"
TARGET_QUESTIONS, TARGET_SECONDS = 1000, 300
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


def measure(questions: list[Question], style: PromptStyle, studio: Studio, per_pass: int, choice: str) -> float:
    """Questions per second, ``per_pass`` questions scored together (1: one ``loglik_records`` call each, the
    path before batching), after one warm-up pass (the model load is not counted)."""
    loglik_many(studio, [(question, style) for question in questions[:per_pass]], [VARIANT], choice)
    started = time.perf_counter()
    for first in range(0, len(questions), per_pass):
        chunk = [(question, style) for question in questions[first : first + per_pass]]
        if per_pass == 1:
            outcomes = [loglik_records(studio, chunk[0][0], [VARIANT], choice, style)]
        else:
            outcomes = loglik_many(studio, chunk, [VARIANT], choice)
        for _, errors in outcomes:
            if errors:
                raise RuntimeError(errors[VARIANT])
    return len(questions) / (time.perf_counter() - started)


CASES = (  # (label, prompt style, choice)
    ("harness prompt, letters", PromptStyle("harness", "medqa"), "letter"),
    ("paper prompt, letters", PromptStyle(), "letter"),
    ("paper prompt, option texts", PromptStyle(), "text"),
)


def rows(count: int = 100) -> list[Row]:
    studio = Studio()
    questions = generated_questions(count)
    result = []
    for label, style, choice in CASES:
        rates = {per_pass: measure(questions, style, studio, per_pass, choice) for per_pass in (1, QUESTIONS_PER_PASS)}
        for per_pass, rate in rates.items():
            minutes = TARGET_QUESTIONS / rate / 60
            verdict = "meets" if TARGET_QUESTIONS / rate < TARGET_SECONDS else "misses"
            path = "one question a call (before)" if per_pass == 1 else f"{per_pass} questions a pass"
            speedup = f"; {rate / rates[1]:.2f}x the one-question path, same run" if per_pass > 1 else ""
            result.append(
                Row(
                    "evaluation",
                    f"loglik, {label}, {path} ({VARIANT})",
                    f"{rate:.1f} questions/s",
                    f"{count} generated ~120-word 4-option questions, extrapolated: 1,000 in {minutes:.1f} min "
                    f"({verdict} the 5 min target){speedup}",
                    f"python -m benchmarks.eval_loglik --questions {count}",
                )
            )
    return result


def main() -> None:
    table = rows(whole_number_options(__doc__, questions=100).questions)
    print("\n".join(row.table_line() for row in table))


if __name__ == "__main__":
    main()
