"""The evaluation runner: variants x modes x questions -> results.json, results.md, accuracy.png.

Questions are the outer loop and variants the inner one, so that each question is one batched
call for all variants that share a base (``generate`` through the studio, ``loglik`` through one
mixed-adapter forward pass), and the results file grows question by question: an interrupted
run resumes where it stopped. A variant that fails (unavailable, refused for memory) is
reported and left out of the rest of the run instead of failing every question again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine import Studio
from ..paper import load_paper_table
from ..paths import data_dir
from ..prompts import PromptError
from .exams import Exam, ExamError, Question
from .generate import GenerateConfig, generate_records
from .loglik import CHOICES, loglik_records
from .report import bar_chart, paper_markdown, results_markdown
from .results import ResultsStore, atomic_write, run_key
from .scoring import Score, score_by_step

MODES = ("generate", "loglik")
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class EvalConfig:
    modes: tuple[str, ...] = MODES
    limit: int | None = None  # the first N questions of every step
    choice: str = "letter"  # loglik: score the option letter or the option text
    generate: GenerateConfig = field(default_factory=GenerateConfig)

    def validated(self) -> EvalConfig:
        if not self.modes or set(self.modes) - set(MODES):
            raise ValueError(f"Modes must be among {', '.join(MODES)}, got {', '.join(self.modes) or 'none'}")
        if self.choice not in CHOICES:
            raise ValueError(f"The loglik choice must be one of {', '.join(CHOICES)}, got {self.choice!r}")
        if self.limit is not None and self.limit < 1:
            raise ExamError(f"The question limit must be at least 1, not {self.limit}")
        return self

    def settings(self, mode: str) -> dict[str, Any]:
        """The settings a run in ``mode`` is made with (a resumed run must match them)."""
        return self.generate.as_dict() if mode == "generate" else {"choice": self.choice}


@dataclass
class EvalOutcome:
    folder: Path
    exam: Exam  # the questions that were asked (after --limit)
    scores: dict[tuple[str, str], dict[str, Score]]  # (variant, mode) -> step -> score
    errors: dict[str, str]  # run key -> why that run is incomplete
    seconds: dict[str, float]  # mode -> wall time of this invocation
    files: dict[str, Path]


def default_output(exam: Exam) -> Path:
    """One folder per exam content, so that rerunning the same exam resumes by itself."""
    return data_dir() / "evaluations" / f"{exam.name}-{exam.fingerprint[:12]}"


def _answer(
    studio: Studio, mode: str, question: Question, variant_ids: list[str], config: EvalConfig, cancel: Any
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    if mode == "generate":
        return generate_records(studio, question, variant_ids, config.generate, cancel)
    return loglik_records(studio, question, variant_ids, config.choice)


def write_reports(outcome: EvalOutcome) -> None:
    """``results.md`` (ours, then the paper's table) and ``accuracy.png`` beside ``results.json``."""
    title = f"{outcome.exam.name}: zero-shot accuracy"
    markdown = results_markdown(outcome.scores, title) + "\n" + paper_markdown(load_paper_table())
    outcome.files["markdown"] = outcome.folder / "results.md"
    outcome.files["chart"] = outcome.folder / "accuracy.png"
    atomic_write(outcome.files["markdown"], markdown.encode("utf-8"))
    atomic_write(outcome.files["chart"], bar_chart(outcome.scores, title))


def run_evaluation(
    studio: Studio,
    variant_ids: list[str],
    exam: Exam,
    output: str | Path | None = None,
    config: EvalConfig | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> EvalOutcome:
    """Evaluate every variant in every mode on ``exam``, resuming from ``output``'s results.json."""
    config = (config or EvalConfig()).validated()
    variant_ids = list(dict.fromkeys(variant_ids))
    if not variant_ids:
        raise PromptError("No variant selected: pick at least one model variant")
    for variant_id in variant_ids:
        studio.variant(variant_id)  # unknown ids fail here, before any work
    folder = Path(output) if output else default_output(exam)
    store = ResultsStore.open(folder, exam)
    for mode in config.modes:
        for variant_id in variant_ids:
            store.begin(variant_id, mode, config.settings(mode))
    asked = exam.limited(config.limit)
    errors: dict[str, str] = {}
    seconds: dict[str, float] = {}
    total, done = len(config.modes) * len(asked.questions), 0
    for mode in config.modes:
        started = time.perf_counter()
        for question in asked.questions:
            if cancel is not None and cancel.is_set():
                break
            todo = [v for v in variant_ids if run_key(v, mode) not in errors and not store.has(v, mode, question)]
            if todo:
                records, failed = _answer(studio, mode, question, todo, config, cancel)
                for variant_id, record in records.items():
                    store.add(variant_id, mode, record)
                errors.update({run_key(v, mode): f"{question.key}: {message}" for v, message in failed.items()})
                if records:
                    store.save()
            done += 1
            if progress is not None:
                progress(done, total, f"{mode} {question.key}")
        seconds[mode] = time.perf_counter() - started
    scores = {
        (variant_id, mode): score_by_step(store.records(variant_id, mode, asked))
        for mode in config.modes
        for variant_id in variant_ids
        if store.records(variant_id, mode, asked)
    }
    files = {"results": store.path} if store.path.exists() else {}
    outcome = EvalOutcome(folder, asked, scores, errors, seconds, files)
    write_reports(outcome)
    return outcome
