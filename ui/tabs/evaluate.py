"""The Evaluate tab: score variants on an exam (the bundled sample or an upload) beside the paper's numbers.

Only widgets live here. Loading and checking the exam, both scoring modes, resuming and the
reports are ``medalpaca_core.evaluation``'s, so the tab and ``python -m medalpaca_core eval`` give
the same numbers and share results folders: running the same exam again resumes it.
"""

from __future__ import annotations

import math
import queue
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import gradio as gr

from medalpaca_core.engine import Studio
from medalpaca_core.evaluation import (
    BUNDLED_EXAM,
    MODES,
    EvalConfig,
    EvalOutcome,
    Exam,
    ExamError,
    default_output,
    load_exam,
    load_paper_table,
    run_evaluation,
)
from medalpaca_core.evaluation.folder_cache import FolderCache
from medalpaca_core.evaluation.report import paper_markdown, results_markdown, statistics_markdown, tasks_markdown
from medalpaca_core.evaluation.suite import BUNDLED_SUITE, load_suite
from medalpaca_core.runtime.paths import data_dir, public_paths
from medalpaca_core.serving.ratelimit import RateLimiter
from medalpaca_core.text.visitor import brief

from ..views.common import (
    RunningTab,
    admit,
    disclaimer,
    finished,
    literal_html,
    shown_as_message,
    while_running,
)
from ..views.pickers import PICKER_CLASS, unavailable_list

SAMPLE, SUITE, UPLOAD = "sample", "suite", "upload"
HARNESS, HARNESS_LABEL = "harness", "loglik, harness prompts (as the Open Medical-LLM Leaderboard)"
MAX_UPLOAD_FILES = 12  # three steps with solutions and image lists, and a few JSONL files
MAX_LIMIT = 100_000  # questions per step: more than any benchmark split has, so 1e300 is refused rather than "all"
ANSWERS_PER_UNIT = 20  # an evaluation counts as one request per this many answers (questions x variants x modes)
HEARTBEAT_S = 0.5  # the handler hands Gradio control at least this often, so a client that left is noticed
SHOWN_FILES = ("chart", "results")
RUN_ERRORS = (ValueError, KeyError, OSError)  # a bad exam, results folder or full disk: a message, not a failure
Progress = Callable[[int, int, str], None]
Update = tuple[int, int, str] | EvalOutcome


def uploaded_exam(files: list[str] | None) -> Exam:
    """The uploaded files read as one exam folder (linked, not copied; the loader limits their size)."""
    if not files:
        raise ExamError("Upload an exam: stepN.json with stepN_solutions.json (and stepN_images.json), or a .jsonl")
    if len(files) > MAX_UPLOAD_FILES:
        raise ExamError(f"{len(files)} files uploaded; an exam has at most {MAX_UPLOAD_FILES}")
    with tempfile.TemporaryDirectory(prefix="medalpaca-exam-") as temporary:
        folder = Path(temporary) / "uploaded"
        folder.mkdir()
        for file in files:
            link = folder / Path(file).name
            if link.exists():
                raise ExamError(f"Two uploaded files are named {brief(link.name)}")
            link.symlink_to(Path(file).resolve())
        try:
            return load_exam(folder)
        except ExamError as error:  # name the uploaded files, not the temporary folder they were read from
            raise ExamError(str(error).replace(f"{folder}/", "").replace(str(folder), "the uploaded files")) from error


def load_source(source: str, files: list[str] | None) -> Exam:
    """The exam a visitor picked (the bundled sample, the bundled suite, or the uploaded files), without the
    questions over a visitor's input limits, which are skipped and listed with the results."""
    if source == SUITE:
        return load_suite(BUNDLED_SUITE)[0].within()
    return (load_exam(BUNDLED_EXAM) if source == SAMPLE else uploaded_exam(files)).within()


def evaluation_cost(answers: int) -> int:
    """Rate-limit units of an evaluation: one per ANSWERS_PER_UNIT answers (questions x variants x modes)."""
    return max(1, math.ceil(answers / ANSWERS_PER_UNIT))


def in_background(run: Callable[[Progress], EvalOutcome], cancel: threading.Event) -> Iterator[Update]:
    """``run`` in a worker thread: its progress as it comes (repeated every HEARTBEAT_S, so that Gradio notices a
    client that left), then its outcome. Closing this generator (Stop, or the client left) sets ``cancel``,
    which the runner checks between questions, and waits for the run to end, so nothing runs on unseen."""
    updates: queue.Queue[Update | None] = queue.Queue()
    failure: list[BaseException] = []

    def work() -> None:
        try:
            updates.put(run(lambda done, total, what: updates.put((done, total, what))))
        except BaseException as error:  # handed to the generator, which raises it in the handler's thread
            failure.append(error)
        finally:
            updates.put(None)

    thread = threading.Thread(target=work, name="medalpaca-evaluate", daemon=True)
    thread.start()
    last: Update = (0, 0, "loading models")
    try:
        while (update := _next(updates, last)) is not None:
            last = update
            yield update
    finally:
        cancel.set()
        thread.join()
    if failure:
        raise failure[0]


def _next(updates: queue.Queue[Update | None], last: Update) -> Update | None:
    try:
        return updates.get(timeout=HEARTBEAT_S)
    except queue.Empty:
        return last


def progress_text(done: int, total: int, what: str) -> str:
    """Where the run is, in words: "Question 2 of 6 done (loglik · step2, question 5)"."""
    where = f"Question {done} of {total} done ({literal_html(what)})" if done else "Loading the models"
    return f"Evaluating… {where}. **Stop** ends the run after the question in progress."


def stopped_text(done: int, total: int) -> str:
    """What a run that was stopped covers, before its (partial) results."""
    if not done:
        return "**Stopped before the first question**: nothing new was scored; the results below are earlier runs'."
    return f"**Stopped after question {done} of {total}**: the scores below cover the questions answered until then."


def outcome_text(outcome: EvalOutcome, stopped: tuple[int, int] | None, config: EvalConfig, suite: bool) -> str:
    """The results table with its statistics (and the suite's tasks), the time per mode and what is incomplete;
    ``stopped``: (questions done, questions asked) of a run that Stop ended."""
    notes = [f"- {mode}: {seconds:.0f} s" for mode, seconds in outcome.seconds.items()]
    notes += [f"- **{run} incomplete**: {public_paths(message)}" for run, message in outcome.errors.items()]
    notes += [f"- **{key} skipped**: {why}" for key, why in outcome.skipped.items()]
    exam = outcome.exam
    heading = f"{exam.name}: zero-shot accuracy" + (", harness prompts" if config.prompt == "harness" else "")
    text = results_markdown(outcome.scores, heading, outcome.norm_scores) + "\n" + "\n".join(notes)
    if suite:
        formats = {step: info.description for step, info in exam.tasks.items()}
        text = tasks_markdown(outcome.scores, outcome.norm_scores, formats, heading) + "\n" + text
    text += "\n\n" + statistics_markdown(outcome.statistics)
    if stopped:
        text = stopped_text(*stopped) + "\n\n" + text
    return literal_html(text)  # exam names come from uploaded file names: shown as text, never as HTML


@dataclass
class EvaluateView:
    """What the evaluation's handler updates: the progress or results table, the chart, the results file."""

    table: gr.Markdown
    chart: gr.Image
    download: gr.File

    @property
    def outputs(self) -> list[gr.components.Component]:
        return [self.table, self.chart, self.download]


class EvaluateTab(RunningTab):
    """Builds the tab's widgets and holds the handlers that wire them to the evaluation runner.

    An evaluation is a run like a comparison: it takes one of the generation slots, counts against the
    per-client rate limit by its size, streams its progress, and ends at the next question on Stop or when
    its client leaves.
    """

    view: EvaluateView  # made by build(), before any event can call a handler

    def evaluate(
        self,
        variant_ids: list[str] | None,
        source: str,
        files: list[str] | None,
        mode: str,
        limit: float | None,
        request: gr.Request,
    ) -> Iterator[dict[gr.components.Component, Any]]:
        """Run (or resume) the evaluation: progress in the table, then the results table, the chart and the file."""
        admit(self.limiter, request)  # one request before reading the exam, the rest of its cost once its size is known
        variant_ids = list(dict.fromkeys(variant_ids or []))
        with shown_as_message(RUN_ERRORS):
            self.studio.require_available(variant_ids)
            exam = load_source(source, files)
            modes = ("loglik",) if mode == HARNESS else MODES if mode == "both" else (mode,)
            prompt = "harness" if mode == HARNESS else "paper"
            config = EvalConfig(modes=modes, limit=int(limit) if limit else None, prompt=prompt)
            answers = len(exam.limited(config.validated().limit).questions) * len(config.modes) * len(variant_ids)
        cost = evaluation_cost(answers)
        if cost > 1:
            what = f"An evaluation of {answers} answers counts as {cost} requests (one per {ANSWERS_PER_UNIT} answers)."
            admit(self.limiter, request, cost - 1, what)
        with self.cancels.running(request.session_hash) as cancel, shown_as_message(RUN_ERRORS):
            yield from self.results(exam, variant_ids, config, cancel, source)

    def results(
        self, exam: Exam, variant_ids: list[str], config: EvalConfig, cancel: threading.Event, source: str
    ) -> Iterator[dict[gr.components.Component, Any]]:
        output = self.uploaded_folder(exam) if source == UPLOAD else default_output(exam)
        run = partial(run_evaluation, self.studio, variant_ids, exam, output, config, cancel=cancel)
        outcome, done, total = None, 0, 0
        for update in in_background(lambda progress: run(progress=progress), cancel):
            if isinstance(update, EvalOutcome):
                outcome, stopped = update, (done, total) if cancel.is_set() and done < total else None
            else:
                done, total, _ = update
                yield {self.view.table: progress_text(*update)}
        assert outcome is not None  # in_background raises if the run did not return
        # Gradio serves only files from its temporary folder or the working directory: hand it copies, which it
        # moves into its own cache (cleaned by the app's delete_cache) before this generator resumes.
        with tempfile.TemporaryDirectory(prefix="medalpaca-evaluate-") as shown:
            copies = {name: shutil.copy(path, shown) for name, path in outcome.files.items() if name in SHOWN_FILES}
            yield {
                self.view.table: outcome_text(outcome, stopped, config, source == SUITE),
                self.view.chart: gr.Image(copies.get("chart"), visible="chart" in copies),
                self.view.download: copies.get("results"),
            }

    @staticmethod
    def uploaded_folder(exam: Exam) -> Path:
        """Results of an uploaded exam, in a cache bounded in size and age (so re-running an upload resumes)."""
        cache = FolderCache(data_dir() / "evaluations" / "uploads")
        folder = cache.root / f"{exam.fingerprint[:16]}"
        cache.prune(keep=folder)
        return cache.folder(folder.name)

    def stop(self, request: gr.Request) -> None:
        self.cancels.stop(request.session_hash)

    def build(self) -> None:
        studio = self.studio
        disclaimer()
        gr.Markdown(
            "Zero-shot multiple-choice accuracy, scored the way the MedAlpaca paper did it (**generate**: the model "
            "answers and the letter it starts with is read, unreadable answers are retried up to 5 times with "
            "sampling) and by **loglik** (the option letter the model finds most probable; deterministic, and "
            "meaningful for small models). Each accuracy has a 95% interval. Runs resume: evaluating the same exam "
            "again only asks the questions not yet answered. On a CPU, 8-bit variants are slow; start with a few "
            "questions per step. **Stop** ends a run after the question in progress. An evaluation counts against "
            f"the per-visitor rate limit as one request per {ANSWERS_PER_UNIT} answers (questions × variants × modes)."
        )
        with gr.Row():
            with gr.Column(scale=1, min_width=320):
                unavailable = studio.unavailable()
                variants = gr.CheckboxGroup(
                    [(f"{v.id} — {v.label}", v.id) for v in studio.variants() if v.id not in unavailable],
                    value=studio.default_variants(count=1),
                    label="Variants",
                    elem_classes=PICKER_CLASS,
                )
                unavailable_list(studio)
                sample = (
                    f"Bundled sample exam ({len(load_exam(BUNDLED_EXAM).questions)} questions; a demo, not the USMLE)"
                )
                suite = "Bundled medical suite (invented samples of MedQA, MedMCQA, PubMedQA and MMLU formats)"
                source = gr.Radio(
                    [(sample, SAMPLE), (suite, SUITE), ("Uploaded files", UPLOAD)],
                    value=SAMPLE,
                    label="Exam",
                )
                files = gr.File(
                    file_count="multiple",
                    file_types=[".json", ".jsonl", ".csv", ".parquet"],
                    type="filepath",
                    label="Exam files: stepN.json + stepN_solutions.json (+ stepN_images.json), or one benchmark's "
                    "MedQA/MedMCQA/PubMedQA/MMLU files (.json, .jsonl, .csv, .parquet)",
                )
                mode = gr.Radio(
                    [*((m, m) for m in (*MODES, "both")), (HARNESS_LABEL, HARNESS)],
                    value="loglik",
                    label="Scoring mode (the paper's prompt, or lm-evaluation-harness's scored by loglik)",
                )
                limit = gr.Number(
                    value=5, precision=0, minimum=1, maximum=MAX_LIMIT, label="Questions per step (blank = all)"
                )
                with gr.Row():
                    start = gr.Button("Evaluate", variant="primary", scale=2)
                    stop = gr.Button("Stop", variant="stop", scale=1, interactive=False, elem_id="evaluate-stop")
            with gr.Column(scale=2, min_width=320):
                table = gr.Markdown(
                    "Pick variants and an exam, then press **Evaluate**.",
                    elem_id="evaluate-results",
                    elem_classes="wide-tables",
                )
                chart = gr.Image(
                    type="filepath", label="Accuracy per step (95% interval)", visible=False, elem_id="evaluate-chart"
                )
                download = gr.File(label="Every question's prompt, response, parsed letter and correctness (JSON)")
        with gr.Accordion("The MedAlpaca paper's USMLE accuracy (published, for reference)", open=False):
            gr.Markdown(paper_markdown(load_paper_table()), elem_id="evaluate-paper", elem_classes="wide-tables")
        self.view = EvaluateView(table, chart, download)
        run = while_running(stop, [start.click]).then(
            self.evaluate,
            [variants, source, files, mode, limit],
            self.view.outputs,
            api_name="evaluate",
            concurrency_id="generate",  # the generation slots that comparisons and chats take
            show_progress_on=table,
        )
        finished(run, stop)
        stop.click(self.stop, None, None, api_name="stop_evaluate", concurrency_limit=None)


def build_evaluate_tab(studio: Studio, limiter: RateLimiter) -> EvaluateTab:
    evaluate = EvaluateTab(studio, limiter)
    with gr.Tab("Evaluate"):
        evaluate.build()
    return evaluate
