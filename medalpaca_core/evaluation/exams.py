"""Exam files: the USMLE self-assessment format of Medical Meadow and MedQA-style JSONL, one loader.

Exam files come from users (the CLI, an upload in the app), so they are read as data only
(``json.loads``, never code), size-limited, and checked completely before anything runs: a
missing solutions file or a solution that is not an option would otherwise surface as a wrong
answer half-way through an hour-long run, or silently lower a score.

USMLE self-assessment (Medical Meadow): ``stepN.json`` is a JSON list of
``{"question": str, "options": {"A": str, ...}}`` (other keys ignored) and ``stepN_solutions.json``
maps the 1-based question number, as a string, to the correct letter. An optional
``stepN_images.json`` lists the numbers of questions that need an image; they are left out, as
the paper did (its models read text only).

MedQA-style JSONL: one ``{"question", "options": {letter: text}, "answer_idx": letter}`` a line.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..runtime.paths import ASSETS_DIR
from ..text.plural import counted
from ..text.prompts import MAX_CONTEXT_CHARS, MAX_QUESTION_CHARS
from ..text.visitor import brief

BUNDLED_EXAM = ASSETS_DIR / "exams" / "usmle-sample"  # a demo written for this project, not the USMLE
MAX_EXAM_BYTES = 5 * 1024 * 1024  # the real self-assessment is ~450 KB in all; MedQA's test split ~2 MB
STEP_FILE = re.compile(r"^(step\d+)\.json$")
OPTION_LETTER = re.compile(r"^[A-Z]$")


class ExamError(ValueError):
    """An exam file that cannot be used; the message names the file and, where known, the question."""


@dataclass(frozen=True)
class Question:
    """One multiple-choice question; ``number`` is 1-based within its file, as in the solutions."""

    step: str
    number: int
    text: str
    options: dict[str, str]
    answer: str
    context: str = ""  # PubMedQA's abstract
    subject: str = ""  # MMLU's subject (its harness prompt names it)

    @property
    def key(self) -> str:
        """Stable id of the question inside an exam, used to resume runs."""
        return f"{self.step}/{self.number}"

    @property
    def chars(self) -> int:
        """The length of the question with its options, as a visitor's question box would hold them."""
        return len(self.text) + sum(len(option) + 4 for option in self.options.values())

    def over_limits(self, max_question_chars: int, max_context_chars: int) -> str | None:
        """Why this question is over a visitor's input limits, if it is."""
        if self.chars > max_question_chars:
            return f"question and options are {self.chars:,} characters; the limit is {max_question_chars:,}"
        if len(self.context) > max_context_chars:
            return f"the context is {len(self.context):,} characters; the limit is {max_context_chars:,}"
        return None


@dataclass(frozen=True)
class TaskInfo:
    """Where a step's (task's) questions came from, in what format, and which rows were skipped."""

    kind: str  # usmle, medqa, medmcqa, pubmedqa, mmlu: selects the harness prompt
    description: str  # the detected format, named in the output
    file: str
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True)
class Exam:
    name: str
    questions: tuple[Question, ...]
    excluded: dict[str, tuple[int, ...]]  # step -> question numbers left out (image questions, over a limit)
    tasks: dict[str, TaskInfo] = field(default_factory=dict)  # step -> its format and file
    skipped: dict[str, str] = field(default_factory=dict)  # question key -> why it is not asked (over a limit)

    @property
    def steps(self) -> list[str]:
        return list(dict.fromkeys(question.step for question in self.questions))

    @property
    def fingerprint(self) -> str:
        """Hash of the questions and answers: results are only resumed on the very same exam."""
        fields = [{k: v for k, v in asdict(q).items() if v or k not in ("context", "subject")} for q in self.questions]
        payload = json.dumps(fields, sort_keys=True)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def limited(self, per_step: int | None) -> Exam:
        """The first ``per_step`` questions of every step (``None``: all of them)."""
        if per_step is None:
            return self
        if per_step < 1:
            raise ExamError(f"The question limit must be at least 1, not {per_step}")
        taken: Counter[str] = Counter()
        kept = []
        for question in self.questions:
            if taken[question.step] < per_step:
                kept.append(question)
                taken[question.step] += 1
        return Exam(self.name, tuple(kept), self.excluded, self.tasks, self.skipped)

    def within(self, max_question_chars: int = MAX_QUESTION_CHARS, max_context_chars: int = MAX_CONTEXT_CHARS) -> Exam:
        """The exam without the questions over a visitor's input limits (the page's; the command line, run by the
        operator, has only the model's context window): each is skipped with its id and reason, and counted with
        the excluded questions, rather than refusing the whole exam."""
        reasons = {q.key: q.over_limits(max_question_chars, max_context_chars) for q in self.questions}
        kept = tuple(q for q in self.questions if reasons[q.key] is None)
        if not kept:
            first = next(iter(reasons.items()))
            raise ExamError(
                f"Every question is over this page's limits (first, {first[0]}: {first[1]}); "
                "the command line (python -m medalpaca_core eval) has no such limit"
            )
        excluded = {step: set(numbers) for step, numbers in self.excluded.items()}
        for question in self.questions:
            if reasons[question.key] is not None:
                excluded.setdefault(question.step, set()).add(question.number)
        skipped = {**self.skipped, **{key: why for key, why in reasons.items() if why is not None}}
        excluded_numbers = {step: tuple(sorted(numbers)) for step, numbers in excluded.items()}
        return Exam(self.name, kept, excluded_numbers, self.tasks, skipped)


def read_text(path: Path, limit: int | None = None) -> str:
    """The file as UTF-8 text, refusing huge, empty and non-UTF-8 files with a clear message."""
    limit = limit or MAX_EXAM_BYTES
    try:
        size = path.stat().st_size
    except OSError as error:
        raise ExamError(f"{path}: cannot be read: {error.strerror or error}") from error
    if size > limit:
        raise ExamError(f"{path} is {size / 1024**2:.1f} MB; the limit for an exam file is {limit // 1024**2} MB")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ExamError(
            f"{path} is not valid UTF-8 text (byte 0x{raw[error.start]:02x} at position {error.start})"
        ) from error
    if not text.strip():
        raise ExamError(f"{path} is empty")
    return text


def parse_json(text: str, where: str) -> Any:
    """``json.loads`` for a user's file; what it accepts but nothing after it can use is an ExamError too:
    nesting deep enough to exhaust the stack, integers of thousands of digits, lone UTF-16 surrogates
    (``"\\ud800"``, which no tokenizer or UTF-8 file takes)."""
    try:
        document = json.loads(text)
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except json.JSONDecodeError:
        raise  # the callers say where, with the line
    except (RecursionError, ValueError) as error:  # UnicodeEncodeError is a ValueError
        raise ExamError(f"{where} is not usable exam data: {type(error).__name__}: {error}") from None
    return document


def read_json(path: Path) -> Any:
    text = read_text(path)
    try:
        return parse_json(text, str(path))
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}"
        raise ExamError(f"{path} is not valid JSON: {error.msg} at {where}") from error


def check_question(entry: Any, where: str) -> tuple[str, dict[str, str]]:
    """The question text and options of one entry, or an ExamError saying what is wrong."""
    if not isinstance(entry, dict):
        raise ExamError(f"{where}: expected an object with 'question' and 'options', got {type(entry).__name__}")
    text, options = entry.get("question"), entry.get("options")
    if not isinstance(text, str) or not text.strip():
        raise ExamError(f"{where}: 'question' is missing or empty")
    if not isinstance(options, dict) or len(options) < 2:
        raise ExamError(f"{where}: 'options' must map at least two letters to answer texts")
    for letter, option in options.items():
        if not OPTION_LETTER.match(str(letter)):
            raise ExamError(f"{where}: option key {brief(letter)} is not a single capital letter")
        if not isinstance(option, str) or not option.strip():
            raise ExamError(f"{where}: option {letter} is empty or not text")
    return text.strip(), {letter: option.strip() for letter, option in options.items()}


def check_answer(answer: Any, options: dict[str, str], where: str) -> str:
    letter = str(answer).strip().upper() if isinstance(answer, str) else None
    if letter not in options:
        raise ExamError(f"{where}: the solution {brief(answer)} is not among the options {', '.join(options)}")
    return letter


def _numbers(document: Any, path: Path) -> set[int]:
    """The question numbers of an image exclusion list (a JSON list of numbers or number strings)."""
    if not isinstance(document, list) or not all(str(item).strip().isdigit() for item in document):
        raise ExamError(f"{path}: expected a JSON list of question numbers, e.g. [3, 17]")
    return {int(str(item)) for item in document}


def load_step(path: Path) -> tuple[list[Question], tuple[int, ...]]:
    """One ``stepN.json`` with its solutions (required) and image exclusion list (optional)."""
    step = STEP_FILE.match(path.name)
    if step is None:
        raise ExamError(f"{path}: a self-assessment file must be named stepN.json (e.g. step1.json)")
    solutions_path = path.with_name(f"{step.group(1)}_solutions.json")
    images_path = path.with_name(f"{step.group(1)}_images.json")
    entries = read_json(path)
    if not isinstance(entries, list) or not entries:
        raise ExamError(f"{path}: expected a non-empty JSON list of questions")
    if not solutions_path.is_file():
        raise ExamError(f"{path}: its solutions file {solutions_path.name} is missing (expected beside it)")
    solutions = read_json(solutions_path)
    if not isinstance(solutions, dict):
        raise ExamError(f"{solutions_path}: expected a JSON object mapping question numbers to letters")
    excluded = _numbers(read_json(images_path), images_path) if images_path.is_file() else set()
    unknown = sorted(set(solutions) - {str(n) for n in range(1, len(entries) + 1)})
    if unknown:
        raise ExamError(
            f"{solutions_path}: has solutions for question {', '.join(unknown)}, "
            f"but {path.name} has only {counted(len(entries), 'question')}"
        )
    questions = []
    for number, entry in enumerate(entries, start=1):
        if number in excluded:
            continue
        where = f"{path}, question {number}"
        text, options = check_question(entry, where)
        if str(number) not in solutions:
            raise ExamError(f"{where}: no solution in {solutions_path.name}")
        answer = check_answer(solutions[str(number)], options, f"{solutions_path}, question {number}")
        questions.append(Question(step.group(1), number, text, options, answer))
    if not questions:
        raise ExamError(f"{path}: every question is in the image exclusion list {images_path.name}")
    return questions, tuple(sorted(excluded))
