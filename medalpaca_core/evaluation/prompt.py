"""The paper's exam prompt, shared by both scoring modes so that they ask exactly the same thing.

medAlpaca's ``eval_usmle.py`` put the question in the ``### Input:`` block followed by one
``"\\n{letter}: {text}"`` line per option, used the instruction "Answer this multiple choice
question." and primed the response with "The Answer to the question is:"; the text is rendered
by ``medalpaca_core.prompts`` in each variant's own template like every other prompt.
"""

from __future__ import annotations

from ..prompts import PromptParts
from .exams import Question

INSTRUCTION = "Answer this multiple choice question."
RESPONSE_PREFIX = "The Answer to the question is:"


def question_input(question: Question) -> str:
    """The question followed by one ``\\n{letter}: {text}`` line per option."""
    return question.text + "".join(f"\n{letter}: {text}" for letter, text in question.options.items())


def exam_parts(question: Question) -> PromptParts:
    return PromptParts(question=question_input(question), instruction=INSTRUCTION, response_prefix=RESPONSE_PREFIX)
