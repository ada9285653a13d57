"""Prompts as lm-evaluation-harness writes them, so that our numbers sit beside the leaderboard's.

The Open Medical-LLM Leaderboard runs EleutherAI's lm-evaluation-harness: for every task a fixed
``doc_to_text`` (the question, lettered options and "Answer:"), scored by the log-likelihood of
" " + each choice (a letter; "yes"/"no"/"maybe" for PubMedQA), no chat template, few-shot
examples as "text answer" blocks separated by blank lines after the task's description (MMLU's
"The following are multiple choice questions (with answers) about anatomy."). The texts here are
written from the harness's task definitions (``lm_eval/tasks/{medqa,medmcqa,pubmedqa,mmlu}``);
``tests/evaluation/test_formats.py`` holds the harness's strings for one document of each.

The paper's USMLE folders have no harness task; they are written as MedQA (same shape).
MedQA with five options has no harness task either; it gets MedQA's text with a fifth letter.
"""

from __future__ import annotations

from collections.abc import Sequence

from .exams import Question

TARGET_DELIMITER = " "
FEWSHOT_DELIMITER = "\n\n"


def _lettered(question: Question) -> str:
    return "".join(f"{letter}. {text}\n" for letter, text in question.options.items())


def doc_to_text(question: Question, kind: str) -> str:
    """The harness's ``doc_to_text`` of the task ``kind`` for this question."""
    if kind == "pubmedqa":
        return f"Abstract: {question.context}\nQuestion: {question.text}\nAnswer:"
    if kind == "medmcqa":
        return f"Question: {question.text}\nChoices:\n{_lettered(question)}Answer:"
    if kind == "mmlu":
        return f"{question.text.strip()}\n{_lettered(question)}Answer:"
    return f"Question: {question.text}\n{_lettered(question)}Answer:"  # medqa, usmle


def choices(question: Question, kind: str, choice: str = "letter") -> dict[str, str]:
    """Option letter -> the choice the harness scores (``doc_to_choice``): the letter, PubMedQA's word, or with
    ``choice="text"`` each option's text (a task file's ``doc_to_choice`` that lists the options' texts)."""
    if kind == "pubmedqa" or choice == "text":
        return dict(question.options)
    return {letter: letter for letter in question.options}


def description(question: Question, kind: str) -> str:
    """The task description before the examples (MMLU names its subject; the medical tasks have none)."""
    if kind == "mmlu" and question.subject:
        subject = question.subject.replace("_", " ")
        return f"The following are multiple choice questions (with answers) about {subject}.\n\n"
    return ""


def context(question: Question, kind: str, shots: Sequence[Question] = (), choice: str = "letter") -> str:
    """The whole prompt: description, then each example with its answer, then the question."""
    examples = "".join(
        doc_to_text(shot, kind) + TARGET_DELIMITER + choices(shot, kind, choice)[shot.answer] + FEWSHOT_DELIMITER
        for shot in shots
    )
    return description(question, kind) + examples + doc_to_text(question, kind)
