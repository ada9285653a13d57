"""Few-shot examples: drawn from a separate file or split, never the question being asked.

The harness takes MMLU's examples from its ``dev`` split and the others' from ``train``; here a
pool is a file named like its task with ``_dev``, ``_train`` or ``_shots`` (``medmcqa_train.jsonl``
serves ``medmcqa_validation.jsonl``; ``anatomy_dev.csv`` serves ``anatomy_test.csv``), or one file
given with ``--shots-from`` for every task. Examples are the first ``k`` of the pool in file order
(the harness's ``first_n``, deterministic), skipping any example that is the question asked --
an example that gives the answer away would make few-shot accuracy meaningless.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .exams import ExamError, Question
from .loading import read_files

SPLIT_SUFFIX = re.compile(r"[_-](test|dev|val|validation|train|shots)$")
ANY_TASK = "*"


def task_base(step: str) -> str:
    """A task's name without its split: ``medmcqa_validation`` and ``medmcqa_train`` are both ``medmcqa``."""
    return SPLIT_SUFFIX.sub("", step)


def _same(a: Question, b: Question) -> bool:
    return a.text.strip() == b.text.strip() and a.context.strip() == b.context.strip()


@dataclass(frozen=True)
class ShotPool:
    """Examples by task (``task_base`` of their step); ``ANY_TASK`` serves tasks without their own."""

    by_task: dict[str, tuple[Question, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, questions: Iterable[Question], any_task: bool = False) -> ShotPool:
        by_task: dict[str, list[Question]] = {}
        for question in questions:
            by_task.setdefault(task_base(question.step), []).append(question)
            if any_task:
                by_task.setdefault(ANY_TASK, []).append(question)
        return cls({task: tuple(found) for task, found in by_task.items()})

    def pick(self, question: Question, k: int) -> tuple[Question, ...]:
        """The first ``k`` examples for ``question``'s task that are not ``question`` itself."""
        if k <= 0:
            return ()
        pool = self.by_task.get(task_base(question.step), self.by_task.get(ANY_TASK, ()))
        examples = tuple(example for example in pool if not _same(example, question))[:k]
        if len(examples) < k:
            raise ExamError(
                f"{k} few-shot examples asked for task {question.step}, but its pool has {len(examples)} other "
                f"questions: put a {task_base(question.step)}_dev (or _train) file beside it, or pass --shots-from"
            )
        return examples

    @property
    def fingerprint(self) -> str:
        """Results made with other examples are other results (stored in a run's settings)."""
        payload = {task: [asdict(q) for q in found] for task, found in sorted(self.by_task.items())}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()[:12]


def load_pool(paths: Iterable[str | Path], any_task: bool = False) -> ShotPool:
    """A pool from data files or USMLE ``stepN.json`` files (their formats are detected as for exams)."""
    paths = [Path(p).expanduser() for p in paths]
    for path in paths:
        if not path.is_file():
            raise ExamError(f"{path}: no such few-shot file")
    steps = [p for p in paths if re.match(r"^step\d+\.json$", p.name)]
    questions, _, _ = read_files(steps, [p for p in paths if p not in steps])
    return ShotPool.of(questions, any_task)
