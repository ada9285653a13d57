"""The Evaluate tab: score variants on an exam (the bundled sample or an upload) beside the paper's numbers.

Only widgets live here. Loading and checking the exam, both scoring modes, resuming and the
reports are ``medalpaca_core.evaluation``'s, so the tab and ``python -m medalpaca_core eval`` give
the same numbers and share results folders: running the same exam again resumes it.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import gradio as gr

from medalpaca_core.echo import brief
from medalpaca_core.engine import Studio
from medalpaca_core.evaluation import (
    BUNDLED_EXAM,
    MODES,
    EvalConfig,
    Exam,
    ExamError,
    default_output,
    load_exam,
    load_paper_table,
    run_evaluation,
)
from medalpaca_core.evaluation.report import paper_markdown, results_markdown, statistics_markdown, tasks_markdown
from medalpaca_core.evaluation.suite import BUNDLED_SUITE, load_suite
from medalpaca_core.paths import public_paths
from medalpaca_core.ratelimit import RateLimiter

from .common import admit, disclaimer, literal_html, user_error

SAMPLE, SUITE, UPLOAD = "sample", "suite", "upload"
HARNESS, HARNESS_LABEL = "harness", "loglik, harness prompts (as the Open Medical-LLM Leaderboard)"
MAX_UPLOAD_FILES = 12  # three steps with solutions and image lists, and a few JSONL files
DEFAULT_VARIANTS = ["smol-base"]


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


def evaluate(
    studio: Studio,
    variant_ids: list[str],
    source: str,
    files: list[str] | None,
    mode: str,
    limit: float | None,
    progress: gr.Progress,
) -> tuple[str, str | None, str | None]:
    """Run (or resume) the evaluation; the results table with its statistics, the chart and the results file.

    ``mode`` ``HARNESS`` is loglik with lm-evaluation-harness's prompts (one more choice of the same radio,
    so that the ``/evaluate`` endpoint keeps its inputs)."""
    if source == SUITE:
        exam, _ = load_suite(BUNDLED_SUITE)
    else:
        exam = load_exam(BUNDLED_EXAM) if source == SAMPLE else uploaded_exam(files)
    prompt = "harness" if mode == HARNESS else "paper"
    modes = ("loglik",) if mode == HARNESS else MODES if mode == "both" else (mode,)
    config = EvalConfig(modes=modes, limit=int(limit) if limit else None, prompt=prompt)
    progress((0, None), desc="Loading models")

    def report(done: int, total: int, description: str) -> None:
        progress((done, total), desc=description, unit="questions")

    outcome = run_evaluation(studio, variant_ids or [], exam, default_output(exam), config, report)
    notes = [f"- {mode}: {seconds:.0f} s" for mode, seconds in outcome.seconds.items()]
    notes += [f"- **{run} incomplete**: {public_paths(message)}" for run, message in outcome.errors.items()]
    heading = f"{exam.name}: zero-shot accuracy" + (", harness prompts" if prompt == "harness" else "")
    text = results_markdown(outcome.scores, heading, outcome.norm_scores) + "\n" + "\n".join(notes)
    if source == SUITE:
        formats = {step: info.description for step, info in exam.tasks.items()}
        text = tasks_markdown(outcome.scores, outcome.norm_scores, formats, heading) + "\n" + text
    text += "\n\n" + statistics_markdown(outcome.statistics)
    text = literal_html(text)  # exam names come from uploaded file names: shown as text, never as HTML
    # Gradio serves only files from the temporary folder or the working directory: hand it copies
    shown = Path(tempfile.mkdtemp(prefix="medalpaca-evaluate-"))
    files = {name: shutil.copy(outcome.files[name], shown) for name in ("chart", "results") if name in outcome.files}
    return text, files["chart"], files.get("results")


def build_evaluate_tab(studio: Studio, limiter: RateLimiter) -> None:
    """The tab's widgets and events; ``app.py`` calls this inside ``gr.Tab("Evaluate")``."""

    def run(variant_ids, source, files, mode, limit, request: gr.Request, progress=gr.Progress()):  # noqa: B008
        admit(limiter, request)  # an evaluation runs models like a comparison: same per-client limit
        try:
            return evaluate(studio, variant_ids, source, files, mode, limit, progress)
        except (ValueError, KeyError, OSError) as error:  # bad exam, settings, results folder or full disk: a message
            raise user_error(error) from error

    disclaimer()
    gr.Markdown(
        "Zero-shot multiple-choice accuracy, scored the way the MedAlpaca paper did it (**generate**: the model "
        "answers and the letter it starts with is read, unreadable answers are retried up to 5 times with "
        "sampling) and by **loglik** (the option letter the model finds most probable; deterministic, and "
        "meaningful for small models). Each accuracy has a 95% interval. Runs resume: evaluating the same exam "
        "again only asks the questions not yet answered. On a CPU, 8-bit variants are slow; start with a few "
        "questions per step."
    )
    with gr.Row():
        with gr.Column(scale=1):
            variants = gr.CheckboxGroup(
                [(f"{v.id} — {v.label}", v.id) for v in studio.variants()],
                value=[v for v in DEFAULT_VARIANTS if studio.knows(v)],
                label="Variants",
            )
            sample = f"Bundled sample exam ({len(load_exam(BUNDLED_EXAM).questions)} questions; a demo, not the USMLE)"
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
            limit = gr.Number(value=5, precision=0, minimum=1, label="Questions per step (blank = all)")
            start = gr.Button("Evaluate", variant="primary")
        with gr.Column(scale=2):
            table = gr.Markdown("Pick variants and an exam, then press **Evaluate**.")
            with gr.Row():
                chart = gr.Image(type="filepath", label="Accuracy per step (95% interval)", show_label=True)
                gr.Markdown(paper_markdown(load_paper_table()))
            download = gr.File(label="Every question's prompt, response, parsed letter and correctness (JSON)")
    start.click(
        run,
        [variants, source, files, mode, limit],
        [table, chart, download],
        api_name="evaluate",
        concurrency_limit=1,
        show_progress_on=table,
    )
