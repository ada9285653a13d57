"""Where an exam's questions come from: a folder, a USMLE step file, or benchmark data files.

``exams`` reads the USMLE self-assessment format and ``formats`` the published benchmark
shapes; this module walks folders, tells few-shot pools from tasks, and refuses a folder that
mixes formats (two benchmarks are two tasks of a suite, not one exam).
"""

from __future__ import annotations

import re
from pathlib import Path

from .exams import STEP_FILE, Exam, ExamError, Question, TaskInfo, load_step
from .formats import read_task_file

USMLE_FORMAT = "USMLE self-assessment (stepN.json + stepN_solutions.json)"
STEP_EXTRA = re.compile(r"^step\d+_(solutions|images)\.json$")
POOL_FILE = re.compile(r"[_-](dev|train|shots)$")  # few-shot pools, never evaluated
DATA_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet")


def folder_files(folder: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """A folder's ``stepN.json`` files, its other data files, and its few-shot pools (``*_dev``, ``*_train``)."""
    steps = sorted((p for p in folder.iterdir() if STEP_FILE.match(p.name)), key=lambda p: int(p.stem[4:]))
    data = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix in DATA_SUFFIXES and not STEP_FILE.match(p.name) and not STEP_EXTRA.match(p.name)
    )
    return steps, [p for p in data if not POOL_FILE.search(p.stem)], [p for p in data if POOL_FILE.search(p.stem)]


def read_files(steps: list[Path], data: list[Path]) -> tuple[list[Question], dict, dict[str, TaskInfo]]:
    """The questions of USMLE step files and benchmark data files, with each task's format."""
    questions: list[Question] = []
    excluded: dict[str, tuple[int, ...]] = {}
    tasks: dict[str, TaskInfo] = {}
    for file in steps:
        step_questions, step_excluded = load_step(file)
        step = STEP_FILE.match(file.name).group(1)
        questions += step_questions
        tasks[step] = TaskInfo("usmle", USMLE_FORMAT, file.name)
        if step_excluded:
            excluded[step] = step_excluded
    for file in data:
        read = read_task_file(file)
        for step, step_questions in read.tasks.items():
            if step in tasks:
                raise ExamError(f"{file}: task {step} is also in {tasks[step].file}; each task must come from one file")
            tasks[step] = TaskInfo(read.format, read.description, file.name, tuple(read.skipped))
            questions += step_questions
    return questions, excluded, tasks


def load_exam(path: str | Path) -> Exam:
    """One exam in one format: a folder of ``stepN.json`` files or of data files, or one file.

    A folder must hold a single format (a MedMCQA file beside an MMLU one is two benchmarks,
    which ``eval --suite`` runs as separate tasks); ``*_dev``/``*_train`` files are few-shot pools.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        steps, data, _ = folder_files(path)
        if not steps and not data:
            raise ExamError(f"{path}: no stepN.json or data file ({', '.join(DATA_SUFFIXES)}) in this folder")
    elif path.is_file():
        steps, data = ([path], []) if path.suffix == ".json" and STEP_FILE.match(path.name) else ([], [path])
    else:
        raise ExamError(f"{path}: no such exam file or folder")
    questions, excluded, tasks = read_files(steps, data)
    kinds = {}
    for info in tasks.values():
        kinds.setdefault(info.kind, info.file)
    if len(kinds) > 1:
        found = ", ".join(f"{file} is {kind}" for kind, file in kinds.items())
        raise ExamError(
            f"{path} mixes formats ({found}): put each in its own folder, or run them as separate tasks "
            "with eval --suite medical --data-dir"
        )
    name = path.name if path.is_dir() else path.stem
    return Exam(name, tuple(questions), excluded, tasks)
