"""The published shapes of the medical benchmarks, detected per file and turned into ``Question``s.

Medical models are compared on MedQA, MedMCQA, PubMedQA and six medical MMLU subjects, and each
is distributed in more than one shape (the original release and the Hugging Face one). A user
drops whatever they downloaded into a folder; the format of every file is detected from its
fields, named in the output, and every row is checked before anything runs, because a wrong
answer key shows up only as a lower score hours later.

Reading: JSON and JSON Lines are parsed here (so that a broken line is named by its number);
CSV and Parquet are read with ``datasets``. Rows that cannot be asked but are not wrong (no
answer key, as in MedMCQA's unlabelled test split; an empty option) are skipped and counted;
rows that contradict the format (an answer that is not an option, a duplicate id, a field of
another format) are an ``ExamError`` naming the file and row. A file in which nothing is left
is an error too: never a silent zero.
"""

from __future__ import annotations

import csv
import json
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..text.plural import counted
from .exams import ExamError, Question, check_answer, check_question, parse_json, read_text

MAX_DATA_BYTES = 100 * 1024 * 1024  # MedMCQA's train split, the largest file here, is ~90 MB as JSON Lines
LETTERS = "ABCDEFGHIJ"
PUBMEDQA_CHOICES = ("yes", "no", "maybe")
MMLU_CSV_COLUMNS = ["question", "A", "B", "C", "D", "answer"]
SPLIT_SUFFIX = re.compile(r"[_-](test|dev|val|validation|train)$")
EXPECTED_FIELDS = {
    "MedMCQA": "question, opa, opb, opc, opd, cop (0-3 in the Hugging Face release, 1-4 in the original)",
    "PubMedQA (labelled)": "question or QUESTION, contexts or CONTEXTS (or context.contexts), final_decision",
    "MMLU": "question, choices (list), answer (index or letter), subject; or header-less CSV question,A,B,C,D,answer",
    "MedQA": "question, options {letter: text}, answer_idx (4 or 5 options); or sent1, ending0-3, label",
}


@dataclass
class TaskFile:
    """The questions of one data file, by task (an MMLU file may hold several subjects)."""

    format: str  # the detected format's name, e.g. "medmcqa"
    description: str  # shown in the output, e.g. "MedMCQA (cop 1-4: the original release)"
    tasks: dict[str, list[Question]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # "row N: why", counted in the output


@dataclass(frozen=True)
class Row:
    number: int  # 1-based data row (the line for JSON Lines and header-less CSV)
    fields: dict[str, Any]
    where: str


def _size_checked(path: Path) -> None:
    try:
        size = path.stat().st_size
    except OSError as error:
        raise ExamError(f"{path}: cannot be read: {error.strerror or error}") from error
    if size > MAX_DATA_BYTES:
        limit = MAX_DATA_BYTES // 1024**2
        raise ExamError(
            f"{path} is {size / 1024**2:,.0f} MB; the limit for a data file is {limit} MB "
            "(split it, or keep only the split you evaluate)"
        )


def _json_rows(path: Path) -> list[Row]:
    """A JSON list of records, an object of records keyed by id (PubMedQA's original), or JSON Lines."""
    text = read_text(path, MAX_DATA_BYTES)
    if path.suffix == ".jsonl":
        return _json_lines(path, text)
    try:
        document = parse_json(text, str(path))
    except json.JSONDecodeError as error:
        if error.msg != "Extra data":  # "Extra data": records one a line, as MedMCQA's original .json files
            raise ExamError(f"{path} is not valid JSON: {error.msg} at line {error.lineno}") from error
        return _json_lines(path, text)
    if isinstance(document, dict) and document and all(isinstance(v, dict) for v in document.values()):
        return [
            Row(n, {"id": key, **value}, f"{path}, record {key!r}")
            for n, (key, value) in enumerate(document.items(), 1)
        ]
    if isinstance(document, dict):
        document = [document]
    if not isinstance(document, list) or not document:
        raise ExamError(f"{path}: expected a JSON list of records, one record a line, or records keyed by id")
    return [Row(n, item, f"{path}, row {n}") for n, item in enumerate(document, 1)]


def _json_lines(path: Path, text: str) -> list[Row]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            where = f"{path}, line {number}"
            try:
                rows.append(Row(number, parse_json(line, where), where))
            except json.JSONDecodeError as error:
                raise ExamError(f"{where}: not valid JSON: {error.msg}") from error
    return rows


def _headerless_mmlu(path: Path) -> bool:
    """The original MMLU CSV has no header: six fields, the last a letter."""
    with path.open(encoding="utf-8-sig", newline="") as file:
        first = next(csv.reader(file), [])
    return len(first) == 6 and first[-1].strip() in tuple("ABCD") and "question" not in first


def _table_rows(path: Path) -> list[Row]:
    """CSV and Parquet through ``datasets`` (its type inference, its Parquet reader)."""
    import datasets

    datasets.disable_progress_bars()
    headerless = path.suffix == ".csv" and _headerless_mmlu(path)
    try:
        with tempfile.TemporaryDirectory(prefix="medalpaca-data-") as cache:
            if path.suffix == ".parquet":
                table = datasets.Dataset.from_parquet(str(path), cache_dir=cache, keep_in_memory=True)
            elif headerless:
                text = datasets.Features(dict.fromkeys(MMLU_CSV_COLUMNS, datasets.Value("string")))
                table = datasets.Dataset.from_csv(
                    str(path), cache_dir=cache, keep_in_memory=True, header=None, names=MMLU_CSV_COLUMNS, features=text
                )
            else:
                table = datasets.Dataset.from_csv(str(path), cache_dir=cache, keep_in_memory=True)
            records = table.to_list()
    except Exception as error:  # pyarrow/pandas raise many types for one cause: a file that is not a table
        raise ExamError(
            f"{path}: cannot be read as {path.suffix[1:].upper()}: {type(error).__name__}: {error}"
        ) from None
    offset = 1 if headerless else 2  # the line of a CSV row, counting the header
    unit = "line" if path.suffix == ".csv" else "row"
    return [Row(n, record, f"{path}, {unit} {n + offset - 1}") for n, record in enumerate(records, 1)]


def read_rows(path: Path) -> list[Row]:
    """Every record of a data file, with where it is (for messages)."""
    _size_checked(path)
    rows = _json_rows(path) if path.suffix in (".json", ".jsonl") else _table_rows(path)
    if not rows:
        raise ExamError(f"{path} has no records")
    for row in rows:
        if not isinstance(row.fields, dict):
            raise ExamError(
                f"{row.where}: expected a record (an object with named fields), got {type(row.fields).__name__}"
            )
    return rows


class Skip(Exception):
    """A row that cannot be asked but is not wrong (no answer key, an empty option): counted, not fatal."""


def _text(row: Row, name: str, required: bool = True) -> str:
    value = row.fields.get(name)
    if value is None:
        if not required:
            return ""
        raise ExamError(f"{row.where}: has no {name!r} field (are several formats mixed in one file?)")
    if not isinstance(value, str | int | float):
        raise ExamError(f"{row.where}: {name!r} must be text, not {type(value).__name__}")
    text = str(value)
    if required and not text.strip():
        raise Skip(f"{name!r} is empty")
    return text


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value == -1


def _index(value: Any, count: int, base: int, row: Row, name: str) -> str:
    """The letter of a 0- or 1-based answer index, or an ExamError naming the row."""
    try:
        index = int(str(value).strip()) - base
    except ValueError:
        raise ExamError(f"{row.where}: {name} {value!r} is not a number") from None
    if not 0 <= index < count:
        raise ExamError(f"{row.where}: {name} {value!r} is out of range ({base}-{base + count - 1})")
    return LETTERS[index]


def _question(row: Row, step: str, text: str, options: dict[str, str], answer: str, **extra: str) -> Question:
    """Checked like every exam question (empty text), kept as written: harness prompts use the raw text."""
    if not all(value.strip() for value in options.values()):
        raise Skip("an option is empty")
    check_question({"question": text, "options": options}, row.where)
    return Question(step, row.number, text, options, answer, **extra)


def medmcqa_base(rows: list[Row]) -> tuple[int, str]:
    """0 (Hugging Face release, cop 0-3) or 1 (original, cop 1-4), told apart by the values in this file."""
    values = set()
    for row in rows:
        cop = row.fields.get("cop")
        if not _missing(cop) and str(cop).strip().lstrip("-").isdigit():
            values.add(int(str(cop).strip()))
    if 0 in values and 4 in values:
        raise ExamError(f"{rows[0].where.rsplit(',', 1)[0]}: cop has both 0 and 4, so it is neither 0-3 nor 1-4")
    if 4 in values:
        return 1, "MedMCQA (cop 1-4: the original release)"
    if 0 in values:
        return 0, "MedMCQA (cop 0-3: the Hugging Face release)"
    return 0, "MedMCQA (cop 0-3 assumed: no row has 0 or 4)"


def _medmcqa(row: Row, step: str, base: int) -> Question:
    options = {letter: _text(row, name) for letter, name in zip("ABCD", ("opa", "opb", "opc", "opd"), strict=True)}
    if _missing(row.fields.get("cop")):
        raise Skip("no answer key (cop)")
    return _question(row, step, _text(row, "question"), options, _index(row.fields["cop"], 4, base, row, "cop"))


def _contexts(row: Row) -> str:
    """PubMedQA's abstract: CONTEXTS (original), contexts, or context.contexts (Hugging Face)."""
    value = row.fields.get("CONTEXTS", row.fields.get("contexts", row.fields.get("context")))
    if isinstance(value, dict):
        value = value.get("contexts")
    if isinstance(value, list) and all(isinstance(part, str) for part in value):
        value = "\n".join(value)
    if not isinstance(value, str) or not value.strip():
        raise ExamError(f"{row.where}: the abstract (CONTEXTS, contexts or context.contexts) is missing or not text")
    return value


def _pubmedqa(row: Row, step: str) -> Question:
    text = _text(row, "QUESTION" if "QUESTION" in row.fields else "question")
    decision = row.fields.get("final_decision")
    if _missing(decision):
        raise Skip("no answer key (final_decision)")
    decision = str(decision).strip().lower()
    if decision not in PUBMEDQA_CHOICES:
        raise ExamError(f"{row.where}: final_decision {row.fields['final_decision']!r} is not yes, no or maybe")
    options = dict(zip("ABC", PUBMEDQA_CHOICES, strict=True))
    answer = "ABC"[PUBMEDQA_CHOICES.index(decision)]
    return _question(row, step, text, options, answer, context=_contexts(row))


def subject_of(path: Path) -> str:
    """MMLU's subject from a file name: ``anatomy_test.csv`` -> ``anatomy``."""
    return SPLIT_SUFFIX.sub("", path.stem)


def _mmlu(row: Row, path: Path) -> Question:
    subject = str(row.fields.get("subject") or subject_of(path)).strip()
    if "choices" in row.fields:
        choices = row.fields["choices"]
        if not isinstance(choices, list) or len(choices) < 2:
            raise ExamError(f"{row.where}: 'choices' must be a list of at least two options")
        options = {LETTERS[i]: str(choice) for i, choice in enumerate(choices[: len(LETTERS)])}
    else:
        options = {letter: _text(row, letter) for letter in "ABCD"}
    answer = row.fields.get("answer")
    if _missing(answer):
        raise Skip("no answer key (answer)")
    if isinstance(answer, str) and answer.strip().upper() in LETTERS:
        letter = check_answer(answer, options, f"{row.where} (answer)")
    else:
        letter = _index(answer, len(options), 0, row, "answer")
    return _question(row, f"mmlu_{subject}", _text(row, "question"), options, letter, subject=subject)


def _medqa(row: Row, step: str) -> Question:
    if "sent1" in row.fields:  # GBaker/MedQA-USMLE-4-options-hf, the harness's source
        options = {letter: _text(row, f"ending{i}") for i, letter in enumerate("ABCD")}
        if _missing(row.fields.get("label")):
            raise Skip("no answer key (label)")
        return _question(row, step, _text(row, "sent1"), options, _index(row.fields["label"], 4, 0, row, "label"))
    if not isinstance(row.fields["options"], dict):
        raise ExamError(f"{row.where}: 'options' must map letters to answer texts")
    options = {str(k): "" if v is None else str(v) for k, v in row.fields["options"].items()}
    if _missing(row.fields.get("answer_idx")):
        raise Skip("no answer key (answer_idx)")
    answer = check_answer(row.fields["answer_idx"], options, f"{row.where} (answer_idx)")
    return _question(row, step, _text(row, "question"), options, answer)


def detect(path: Path, rows: list[Row]) -> str:
    """The format of a file, from the fields of its first record."""
    fields = set(rows[0].fields)
    if {"question", "opa", "opb", "opc", "opd", "cop"} <= fields:
        return "medmcqa"
    if "final_decision" in fields:
        return "pubmedqa"
    if {"question", "choices", "answer"} <= fields or set(MMLU_CSV_COLUMNS) <= fields:
        return "mmlu"
    if {"question", "options"} <= fields and not fields & {"answer_idx", "answer"}:
        raise ExamError(
            f"{path}: questions with options but no answer_idx: a USMLE self-assessment file must be named "
            "stepN.json (e.g. step1.json), its answers in stepN_solutions.json beside it"
        )
    if {"question", "options"} <= fields or {"sent1", "ending0", "label"} <= fields:
        return "medqa"
    expected = "\n".join(f"- {name}: {names}" for name, names in EXPECTED_FIELDS.items())
    found = ", ".join(sorted(map(str, fields))[:12])
    raise ExamError(f"{path}: not a known benchmark format (its fields: {found}). Expected one of:\n{expected}")


def _description(kind: str, questions: list[Question]) -> str:
    if kind == "medqa":
        counts = sorted({len(q.options) for q in questions})
        return f"MedQA ({'/'.join(map(str, counts))} options)"
    return {"pubmedqa": "PubMedQA (labelled; the abstract is the context)", "mmlu": "MMLU"}[kind]


def read_task_file(path: str | Path) -> TaskFile:
    """One data file's questions by task, its detected format, and the rows it skipped."""
    path = Path(path).expanduser()
    rows = read_rows(path)
    kind = detect(path, rows)
    description, base = "", 0
    if kind == "medmcqa":
        base, description = medmcqa_base(rows)
    readers: dict[str, Callable[[Row], Question]] = {
        "medmcqa": lambda row: _medmcqa(row, path.stem, base),
        "pubmedqa": lambda row: _pubmedqa(row, path.stem),
        "mmlu": lambda row: _mmlu(row, path),
        "medqa": lambda row: _medqa(row, path.stem),
    }
    result = TaskFile(kind, description)
    seen: dict[str, int] = {}
    for row in rows:
        row_id = next((str(row.fields[k]) for k in ("id", "pubid", "PMID") if row.fields.get(k) is not None), None)
        if row_id is not None and row_id in seen:
            raise ExamError(f"{row.where}: id {row_id!r} is also the id of record {seen[row_id]}")
        if row_id is not None:
            seen[row_id] = row.number
        try:
            question = readers[kind](row)
        except Skip as why:
            result.skipped.append(f"{row.where.rsplit(', ', 1)[-1]}: {why}")
            continue
        result.tasks.setdefault(question.step, []).append(question)
    questions = [q for task in result.tasks.values() for q in task]
    if not questions:
        first = f" (first: {result.skipped[0]})" if result.skipped else ""
        skipped = counted(len(result.skipped), "row")
        raise ExamError(f"{path}: no question could be asked: {skipped} skipped, none left{first}")
    result.description = result.description or _description(kind, questions)
    return result
