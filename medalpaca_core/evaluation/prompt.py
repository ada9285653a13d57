"""The paper's exam prompt, shared by both scoring modes so that they ask exactly the same thing.

medAlpaca's ``eval_usmle.py`` put the question in the ``### Input:`` block followed by one
``"\\n{letter}: {text}"`` line per option, used the instruction "Answer this multiple choice
question." and primed the response with "The Answer to the question is:"; the text is rendered
by ``medalpaca_core.text.prompts`` in each variant's own template like every other prompt.

``PromptStyle`` says which prompt a question is asked with: the paper's (``paper``, in the
variant's template), or lm-evaluation-harness's plain text (``harness``, see ``harness.py``),
with optional few-shot examples. PubMedQA's abstract is the paper prompt's context; few-shot
examples come before it, each answered the way the model is primed to answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..text.prompts import PromptParts
from .exams import Question

PROMPT_STYLES = ("paper", "harness")

INSTRUCTION = "Answer this multiple choice question."
RESPONSE_PREFIX = "The Answer to the question is:"


def question_input(question: Question) -> str:
    """The question followed by one ``\\n{letter}: {text}`` line per option."""
    return question.text + "".join(f"\n{letter}: {text}" for letter, text in question.options.items())


def solved_example(question: Question) -> str:
    """A few-shot example in the paper's style: the question, its options and the primed answer."""
    return f"{question_input(question)}\n{RESPONSE_PREFIX} {question.answer}"


def exam_parts(question: Question, shots: Sequence[Question] = ()) -> PromptParts:
    context = "\n\n".join([*(solved_example(shot) for shot in shots), question.context])
    return PromptParts(
        question=question_input(question),
        context=context.strip(),
        instruction=INSTRUCTION,
        response_prefix=RESPONSE_PREFIX,
    )


@dataclass(frozen=True)
class PromptStyle:
    """How one question is asked: the prompt style, its task's format (``TaskInfo.kind``), its examples."""

    style: str = "paper"
    kind: str = "usmle"
    shots: tuple[Question, ...] = ()
