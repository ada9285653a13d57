"""``eval --suite medical``: every benchmark file found in a folder, as the tasks of one evaluation.

The Open Medical-LLM Leaderboard reports nine tasks (MedQA, MedMCQA, PubMedQA and six MMLU
subjects). A user downloads whichever of them they have into one folder; each file (or MMLU
subject) becomes one task, named in the table with its detected format, and the whole folder is
one resumable run. A USMLE folder one level down (``DIR/usmle/step1.json``) is a task per step,
named ``usmle/step1``; ``*_dev`` and ``*_train`` files are few-shot pools for their task.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..runtime.paths import ASSETS_DIR
from .exams import Exam, ExamError, Question, TaskInfo
from .loading import DATA_SUFFIXES, folder_files, read_files
from .shots import ShotPool, load_pool

SUITES = ("medical",)
BUNDLED_SUITE = ASSETS_DIR / "exams" / "medical-suite"  # dev-written samples of every format, not the real data


def _prefixed(prefix: str, questions: list[Question], tasks: dict[str, TaskInfo], excluded: dict):
    questions = [replace(q, step=f"{prefix}/{q.step}") for q in questions]
    tasks = {f"{prefix}/{step}": replace(info, file=f"{prefix}/{info.file}") for step, info in tasks.items()}
    return questions, tasks, {f"{prefix}/{step}": numbers for step, numbers in excluded.items()}


def load_suite(data_dir: str | Path, suite: str = "medical") -> tuple[Exam, ShotPool]:
    """Every task in ``data_dir`` (and its immediate subfolders) as one exam, and the few-shot pools found."""
    if suite not in SUITES:
        raise ExamError(f"Unknown suite {suite!r}; known: {', '.join(SUITES)}")
    folder = Path(data_dir).expanduser()
    if not folder.is_dir():
        raise ExamError(f"{folder}: no such data folder")
    steps, data, pools = folder_files(folder)
    questions, excluded, tasks = read_files(steps, data)
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        sub_steps, sub_data, sub_pools = folder_files(sub)
        found = read_files(sub_steps, sub_data)
        sub_questions, sub_tasks, sub_excluded = _prefixed(sub.name, found[0], found[2], found[1])
        questions, excluded = questions + sub_questions, {**excluded, **sub_excluded}
        tasks.update(sub_tasks)
        pools += sub_pools
    if not questions:
        raise ExamError(f"{folder}: no benchmark file ({', '.join(DATA_SUFFIXES)}) or stepN.json in this folder")
    return Exam(f"{suite}-{folder.name}", tuple(questions), excluded, tasks), load_pool(pools)
