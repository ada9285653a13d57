"""The results file: every question's prompt, response, parsed letter and correctness, resumable.

One ``results.json`` per output folder holds every (variant, mode) run on one exam. It is
rewritten atomically (a temporary file renamed over the old one) after each question, so an
interrupted run loses at most the question in flight and a crash mid-write never leaves a
truncated file; a rerun skips what is already there. Records are only ever added: a shorter
rerun (``--limit``) never removes finished answers. A file made for another exam, or a run
made with other settings, is refused rather than mixed in or overwritten.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from .exams import Exam, Question

FORMAT = "medalpaca-studio/usmle-eval/1"
RESULTS_FILE = "results.json"


class ResultsError(ValueError):
    """A results file that cannot be resumed; the message says why and what to do."""


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def new_record(question: Question, prompt: str, response: str, parsed: str | None, **extra: Any) -> dict[str, Any]:
    """One answered question, with what is needed to audit and to re-score it."""
    return {
        "question": question.key,
        "step": question.step,
        "number": question.number,
        "answer": question.answer,
        "n_options": len(question.options),
        "prompt": prompt,
        "response": response,
        "parsed": parsed,
        "correct": parsed == question.answer,
        **extra,
    }


def run_key(variant_id: str, mode: str) -> str:
    return f"{variant_id} | {mode}"


class ResultsStore:
    """The runs of one output folder: ``runs[run_key] = {variant, mode, settings, records}``."""

    def __init__(self, path: Path, document: dict[str, Any]):
        self.path = path
        self.document = document

    @classmethod
    def open(cls, folder: Path, exam: Exam) -> ResultsStore:
        """The folder's results (to resume) or a new, empty store; refuses another exam's results."""
        path = Path(folder) / RESULTS_FILE
        exam_info = {"name": exam.name, "fingerprint": exam.fingerprint, "questions": len(exam.questions)}
        if not path.exists():
            return cls(path, {"format": FORMAT, "exam": {**exam_info, "excluded": exam.excluded}, "runs": {}})
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ResultsError(
                f"Cannot resume from {path}: it is unreadable ({error}); move it away or choose another output folder"
            ) from error
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ResultsError(f"{path} is not a results file of this evaluation; choose another output folder")
        if document["exam"].get("fingerprint") != exam.fingerprint:
            raise ResultsError(
                f"{path} holds results for another exam ({document['exam'].get('name')!r}, different questions or "
                f"answers); choose another output folder"
            )
        return cls(path, document)

    @property
    def runs(self) -> dict[str, dict[str, Any]]:
        return self.document["runs"]

    def begin(self, variant_id: str, mode: str, settings: dict[str, Any]) -> None:
        """Start or continue a run; its settings must be those it was started with."""
        key = run_key(variant_id, mode)
        run = self.runs.setdefault(key, {"variant": variant_id, "mode": mode, "settings": settings, "records": {}})
        if run["settings"] != settings:
            raise ResultsError(
                f"{self.path} already holds {key} made with other settings ({run['settings']} instead of "
                f"{settings}); choose another output folder to compare settings"
            )

    def has(self, variant_id: str, mode: str, question: Question) -> bool:
        return question.key in self.runs[run_key(variant_id, mode)]["records"]

    def add(self, variant_id: str, mode: str, record: dict[str, Any]) -> None:
        self.runs[run_key(variant_id, mode)]["records"][record["question"]] = record

    def records(self, variant_id: str, mode: str, exam: Exam | None = None) -> list[dict[str, Any]]:
        """A run's records in exam order; only the exam's (possibly limited) questions if given."""
        records = self.runs[run_key(variant_id, mode)]["records"]
        if exam is None:
            return list(records.values())
        return [records[q.key] for q in exam.questions if q.key in records]

    def save(self) -> None:
        self.document["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        atomic_write(self.path, json.dumps(self.document, indent=1, ensure_ascii=False).encode("utf-8"))
