"""The evaluation runner: variants x modes x questions -> results.json, results.md, accuracy.png.

Questions are the outer loop and variants the inner one, so that each question is one batched
call for all variants that share a base (``generate`` through the studio, ``loglik`` through one
mixed-adapter forward pass), and the results file grows question by question: an interrupted
run resumes where it stopped. A variant this machine cannot run is refused before any work; one that
fails (refused for memory, a corrupt adapter) is reported and left out of the rest of the run instead
of failing every question again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine import Studio
from ..generation.answers import Unaskable
from ..models.paper import load_paper_table
from ..runtime.paths import data_dir
from ..text.plural import counted
from ..text.prompts import PromptError
from .exams import Exam, ExamError, Question
from .generate import GenerateConfig, generate_records
from .loglik import CHOICES, loglik_many, loglik_records
from .prompt import PROMPT_STYLES, PromptStyle
from .report import (
    bar_chart,
    paper_markdown,
    reliability_chart,
    results_markdown,
    statistics_markdown,
    tasks_markdown,
)
from .results import ResultsStore, atomic_write, run_key
from .scoring import ALL_STEPS, Score, score_by_step
from .shots import ShotPool
from .statistics import run_statistics

MODES = ("generate", "loglik")
QUESTIONS_PER_PASS = 16  # loglik: questions scored together (one forward pass for letters), then saved
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class EvalConfig:
    modes: tuple[str, ...] = MODES
    limit: int | None = None  # the first N questions of every step
    choice: str = "letter"  # loglik: score the option letter or the option text
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    prompt: str = "paper"  # or "harness": lm-evaluation-harness's text, scored by loglik
    shots: int = 0  # few-shot examples before each question, from ``pool``
    pool: ShotPool = field(default_factory=ShotPool)
    rotate: bool = False  # loglik: also ask every question with its options rotated (position bias)

    def validated(self) -> EvalConfig:
        if not self.modes or set(self.modes) - set(MODES):
            raise ValueError(f"Modes must be among {', '.join(MODES)}, got {', '.join(self.modes) or 'none'}")
        if self.choice not in CHOICES:
            raise ValueError(f"The loglik choice must be one of {', '.join(CHOICES)}, got {self.choice!r}")
        if self.limit is not None and self.limit < 1:
            raise ExamError(f"The question limit must be at least 1, not {self.limit}")
        if self.prompt not in PROMPT_STYLES:
            raise ValueError(f"The prompt style must be one of {', '.join(PROMPT_STYLES)}, got {self.prompt!r}")
        if self.prompt == "harness" and "generate" in self.modes:
            raise ValueError("Harness prompts are scored by log-likelihood, as the harness does: use --mode loglik")
        if self.shots < 0:
            raise ValueError(f"The number of few-shot examples must be 0 or more, not {self.shots}")
        return self

    def settings(self, mode: str) -> dict[str, Any]:
        """The settings a run in ``mode`` is made with (a resumed run must match them).

        Only what differs from the original zero-shot paper prompt is added, so that results made
        before these options existed still resume."""
        settings = self.generate.as_dict() if mode == "generate" else {"choice": self.choice}
        if self.prompt != "paper":
            settings["prompt"] = self.prompt
        if self.shots:
            settings.update(shots=self.shots, pool=self.pool.fingerprint)
        if self.rotate and mode == "loglik":
            settings["rotate"] = True
        return settings

    def scores_texts(self, kind: str) -> bool:
        """Whether the choices scored differ in length, the only case where acc_norm can differ from acc:
        option texts, or PubMedQA's yes/no/maybe in the harness's prompt (letters are one byte each)."""
        return self.choice == "text" or (self.prompt == "harness" and kind == "pubmedqa")

    def style(self, exam: Exam, question: Question) -> PromptStyle:
        task = exam.tasks.get(question.step)
        return PromptStyle(self.prompt, task.kind if task else "usmle", self.pool.pick(question, self.shots))


@dataclass
class EvalOutcome:
    folder: Path
    exam: Exam  # the questions that were asked (after --limit)
    scores: dict[tuple[str, str], dict[str, Score]]  # (variant, mode) -> step -> score
    errors: dict[str, str]  # run key -> why that run is incomplete
    seconds: dict[str, float]  # mode -> wall time of this invocation
    files: dict[str, Path]
    norm_scores: dict[tuple[str, str], dict[str, Score]] = field(default_factory=dict)  # loglik's acc_norm
    statistics: dict[str, Any] = field(default_factory=dict)  # McNemar, calibration, position bias
    skipped: dict[str, str] = field(default_factory=dict)  # question key -> why it was not asked (all variants or one)


def default_output(exam: Exam) -> Path:
    """One folder per exam content, so that rerunning the same exam resumes by itself."""
    return data_dir() / "evaluations" / f"{exam.name}-{exam.fingerprint[:12]}"


def _answer(
    studio: Studio, mode: str, question: Question, variant_ids: list[str], config: EvalConfig, exam: Exam, cancel: Any
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    style = config.style(exam, question)
    if mode == "generate":
        return generate_records(studio, question, variant_ids, config.generate, cancel, style.shots)
    return loglik_records(studio, question, variant_ids, config.choice, style, config.rotate)


def _answer_chunk(
    studio: Studio, mode: str, todo: list[tuple[Question, list[str]]], config: EvalConfig, exam: Exam, cancel: Any
) -> list[tuple[dict[str, dict[str, Any]], dict[str, str]]]:
    """Several questions' records: in batched forward passes when they ask the same variants (loglik)."""
    asked = [(question, variants) for question, variants in todo if variants]
    if mode == "loglik" and len({tuple(variants) for _, variants in asked}) == 1:
        styles = [(question, config.style(exam, question)) for question, _ in asked]
        outcomes = iter(loglik_many(studio, styles, asked[0][1], config.choice, config.rotate))
    else:
        outcomes = iter(
            [_answer(studio, mode, question, variants, config, exam, cancel) for question, variants in asked]
        )
    return [next(outcomes) if variants else ({}, {}) for _, variants in todo]


def _keep(
    store: ResultsStore,
    mode: str,
    todo: list[tuple[Question, list[str]]],
    outcomes: list[tuple[dict[str, dict[str, Any]], dict[str, str]]],
    errors: dict[str, str],
    skipped: dict[str, str],
) -> None:
    """Each question's records into the store (saved once for the chunk), its failures into ``errors`` (which end
    that variant's run), the questions it could not be asked into ``skipped`` (which end nothing)."""
    saved = False
    for (question, _), (records, failed) in zip(todo, outcomes, strict=True):
        for variant_id, record in records.items():
            store.add(variant_id, mode, record)
            saved = True
        for variant_id, message in failed.items():
            if isinstance(message, Unaskable):
                skipped[question.key] = message
            else:
                errors[run_key(variant_id, mode)] = f"{question.key}: {message}"
    if saved:
        store.save()


def title(exam: Exam, config: EvalConfig) -> str:
    shots = f"{config.shots}-shot" if config.shots else "zero-shot"
    prompt = ", harness prompts" if config.prompt == "harness" else ""
    return f"{exam.name}: {shots} accuracy{prompt}"


def formats_markdown(exam: Exam) -> str:
    """Each task's file and detected format, and the rows skipped (counted, never silent)."""
    lines = []
    for step, info in exam.tasks.items():
        skipped = (
            f"; {counted(len(info.skipped), 'row')} skipped ({', '.join(info.skipped[:3])})" if info.skipped else ""
        )
        lines.append(f"- {step}: {info.file}, {info.description}{skipped}")
    return "\n".join(["Formats:", *lines]) + "\n" if lines else ""


def skipped_markdown(skipped: dict[str, str]) -> str:
    """The questions left out of the scores, each with its id and why: never a silent gap."""
    if not skipped:
        return ""
    return "\n".join([f"Skipped ({len(skipped)}):", *(f"- {key}: {why}" for key, why in skipped.items())]) + "\n"


def write_reports(outcome: EvalOutcome, config: EvalConfig | None = None) -> None:
    """``results.md`` (ours, statistics, then the paper's table), ``accuracy.png``, ``reliability.png``."""
    heading = title(outcome.exam, config or EvalConfig())
    markdown = results_markdown(outcome.scores, heading, outcome.norm_scores)
    if len(outcome.exam.tasks) > 1 and any(info.kind != "usmle" for info in outcome.exam.tasks.values()):
        formats = {step: info.description for step, info in outcome.exam.tasks.items()}
        markdown = tasks_markdown(outcome.scores, outcome.norm_scores, formats, heading) + "\n" + markdown
    markdown += "\n" + formats_markdown(outcome.exam) + skipped_markdown(outcome.skipped)
    markdown += "\n" + statistics_markdown(outcome.statistics)
    markdown += "\n" + paper_markdown(load_paper_table())
    outcome.files["markdown"] = outcome.folder / "results.md"
    outcome.files["chart"] = outcome.folder / "accuracy.png"
    atomic_write(outcome.files["markdown"], markdown.encode("utf-8"))
    atomic_write(outcome.files["chart"], bar_chart(outcome.scores, heading))
    if outcome.statistics.get("calibration"):
        outcome.files["reliability"] = outcome.folder / "reliability.png"
        atomic_write(outcome.files["reliability"], reliability_chart(outcome.statistics["calibration"]))


def _norm_scores(records: list[dict[str, Any]], exam: Exam, config: EvalConfig) -> dict[str, Score]:
    """acc_norm per step, for the steps where it can differ from acc (with the overall score); {} for none."""
    if not all("correct_norm" in record for record in records):
        return {}
    kinds = {step: task.kind for step, task in exam.tasks.items()}
    by_step = score_by_step(records, norm=True)
    kept = {step: score for step, score in by_step.items() if config.scores_texts(kinds.get(step, "usmle"))}
    return {**kept, ALL_STEPS: by_step[ALL_STEPS]} if kept else {}


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
    studio.require_available(variant_ids)  # unknown ids and variants this machine cannot run fail here, before any work
    folder = Path(output) if output else default_output(exam)
    store = ResultsStore.open(folder, exam)
    for mode in config.modes:
        for variant_id in variant_ids:
            store.begin(variant_id, mode, config.settings(mode))
    asked = exam.limited(config.limit)
    for question in {q.step: q for q in asked.questions}.values():
        config.style(asked, question)  # too few few-shot examples for a task: said now, not mid-run
    errors: dict[str, str] = {}
    skipped = dict(asked.skipped)
    seconds: dict[str, float] = {}
    total, done = len(config.modes) * len(asked.questions), 0
    for mode in config.modes:
        started = time.perf_counter()
        size = QUESTIONS_PER_PASS if mode == "loglik" else 1
        for first in range(0, len(asked.questions), size):
            if cancel is not None and cancel.is_set():
                break
            chunk = asked.questions[first : first + size]
            todo = [
                (q, [v for v in variant_ids if run_key(v, mode) not in errors and not store.has(v, mode, q)])
                for q in chunk
            ]
            _keep(store, mode, todo, _answer_chunk(studio, mode, todo, config, asked, cancel), errors, skipped)
            for question in chunk:
                done += 1
                if progress is not None:
                    progress(done, total, f"{mode} · {question.step}, question {question.number}")
        seconds[mode] = time.perf_counter() - started
    scores = {
        (variant_id, mode): score_by_step(store.records(variant_id, mode, asked))
        for mode in config.modes
        for variant_id in variant_ids
        if store.records(variant_id, mode, asked)
    }
    runs = {
        f"{variant_id} · {mode}": store.records(variant_id, mode, asked)
        for mode in config.modes
        for variant_id in variant_ids
        if store.records(variant_id, mode, asked)
    }
    norm_scores = {
        (variant_id, mode): norm
        for (variant_id, mode) in scores
        if mode == "loglik" and (norm := _norm_scores(store.records(variant_id, mode, asked), asked, config))
    }
    statistics = run_statistics(runs)
    if store.path.exists():
        store.document["statistics"] = statistics
        store.document["skipped"] = skipped
        store.save()
    files = {"results": store.path} if store.path.exists() else {}
    outcome = EvalOutcome(folder, asked, scores, errors, seconds, files, norm_scores, statistics, skipped)
    write_reports(outcome, config)
    return outcome
