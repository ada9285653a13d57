"""Log-likelihood evaluation speed: four-option questions per second with the default model.

    .venv/bin/python -m benchmarks.eval_loglik [--questions 100]

Target (issue 15): 1,000 four-option questions in under 5 minutes. The questions are generated
(seeded) at MedQA's typical length, about 120 words of stem and four short options, since the
real data may not be on the machine; they are scored with the harness prompt (one forward pass
a question, the four letters read from its last position) and with the paper's. The row
measures ``--questions`` of them and extrapolates to 1,000, and says so.
"""

from __future__ import annotations

import random
import time

from benchmarks.inference import Row, whole_number_options
from medalpaca_core.engine import Studio
from medalpaca_core.evaluation.exams import Question
from medalpaca_core.evaluation.loglik import loglik_records
from medalpaca_core.evaluation.prompt import PromptStyle

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


def measure(questions: list[Question], style: PromptStyle, studio: Studio) -> float:
    """Questions per second, after one warm-up question (the model load is not counted)."""
    loglik_records(studio, questions[0], [VARIANT], style=style)
    started = time.perf_counter()
    for question in questions:
        _, errors = loglik_records(studio, question, [VARIANT], style=style)
        if errors:
            raise RuntimeError(errors[VARIANT])
    return len(questions) / (time.perf_counter() - started)


def rows(count: int = 100) -> list[Row]:
    studio = Studio()
    questions = generated_questions(count)
    result = []
    for label, style in (("harness", PromptStyle("harness", "medqa")), ("paper", PromptStyle())):
        rate = measure(questions, style, studio)
        minutes = TARGET_QUESTIONS / rate / 60
        verdict = "meets" if TARGET_QUESTIONS / rate < TARGET_SECONDS else "misses"
        result.append(
            Row(
                "evaluation",
                f"loglik, {label} prompt, 4-option questions ({VARIANT})",
                f"{rate:.1f} questions/s",
                f"measured on {count} generated ~120-word questions, extrapolated: 1,000 in {minutes:.1f} min "
                f"({verdict} the 5 min target)",
                f"python -m benchmarks.eval_loglik --questions {count}",
            )
        )
    return result


def main() -> None:
    table = rows(whole_number_options(__doc__, questions=100).questions)
    print("\n".join(row.table_line() for row in table))


if __name__ == "__main__":
    main()
