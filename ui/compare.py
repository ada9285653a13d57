"""The Compare tab: one question to up to four variants, answers streaming side by side, then a vote and exports.

Answers are shown in read-only text boxes, which display model text as text: whatever HTML or
script a model writes is never parsed by the browser.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from medalpaca_core.engine import Studio
from medalpaca_core.export import Comparison, write_exports
from medalpaca_core.generation import Answer, Status
from medalpaca_core.ratelimit import RateLimiter
from medalpaca_core.selection import MAX_VARIANTS, SpeedLog
from medalpaca_core.votes import ALL_BAD, VoteError, VoteStorageError, VoteStore

from .common import (
    INPUT_ERRORS,
    CancelBoard,
    admit,
    answer_status,
    disclaimer,
    literal_html,
    plain_text,
    settings_accordion,
    settings_from,
    throttled,
    user_error,
)

# The seed report's two queries: a question with the diabetes context, and one with no context.
DIABETES_CONTEXT = (  # the medAlpaca README's own example
    "Diabetes is a metabolic disease that causes high blood sugar. The symptoms include increased thirst, "
    "frequent urination, and unexplained weight loss."
)
EXAMPLES = [[DIABETES_CONTEXT, "What are the symptoms of diabetes?"], ["", "How to cure COVID-19?"]]
LEADERBOARD_HEADERS = ["variant", "wins", "comparisons", "win rate", "all bad"]


@dataclass
class Slot:
    """One answer column."""

    column: gr.Column
    answer: gr.Textbox
    status: gr.Markdown

    @property
    def outputs(self) -> list[gr.components.Component | gr.Column]:
        return [self.column, self.answer, self.status]


def run_line(answers: dict[str, Answer], started: float) -> str:
    """One line above the columns: what is happening now, then how long the whole comparison took."""
    elapsed = time.perf_counter() - started
    loading = [ident for ident, answer in answers.items() if answer.status == Status.LOADING]
    if loading:
        return f"Loading {literal_html(', '.join(loading))}… ({elapsed:.0f} s)"
    if all(answer.finished for answer in answers.values()):
        failed = sum(answer.status == Status.ERROR for answer in answers.values())
        note = f", {failed} failed" if failed else ""
        return f"Finished {len(answers)} answers in {elapsed:.1f} s{note}."
    return f"Generating {len(answers)} answers… ({elapsed:.1f} s)"


def leaderboard_rows(votes: VoteStore) -> list[list[Any]]:
    return [
        [row.variant_id, row.wins, row.comparisons, f"{row.win_rate:.0%}", row.all_bad] for row in votes.leaderboard()
    ]


class CompareTab:
    """Builds the tab's widgets and holds the handlers that wire them to the studio."""

    def __init__(self, studio: Studio, votes: VoteStore, speeds: SpeedLog, limiter: RateLimiter):
        self.studio, self.votes, self.speeds, self.limiter = studio, votes, speeds, limiter
        self.cancels = CancelBoard()

    def label(self, ident: str) -> str:
        """The registry's label, or the bare id of a variant the registry does not know."""
        return self.studio.variant(ident).label if self.studio.knows(ident) else ident

    def slot_updates(self, variant_ids: list[str], answers: dict[str, Answer] | None = None) -> list[Any]:
        """Show one column per selected variant (with its answer so far) and hide the rest."""
        updates: list[Any] = []
        for index in range(MAX_VARIANTS):
            if index >= len(variant_ids):
                updates += [gr.Column(visible=False), gr.Textbox(value="", label="Answer"), ""]
                continue
            ident = variant_ids[index]
            answer = (answers or {}).get(ident)
            updates += [
                gr.Column(visible=True),
                gr.Textbox(value=answer.text if answer else "", label=ident),
                answer_status(answer) if answer else "Ready.",
            ]
        return updates

    def choices(self) -> gr.Dropdown:
        """The picker's labels again, now with the speeds measured by the run that just ended."""
        return gr.Dropdown(choices=self.studio.choices(self.speeds))

    def compare(
        self,
        variant_ids: list[str] | None,
        context: str,
        question: str,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's way of asking for a progress bar)
        **setting_values: float | None,
    ) -> Iterator[list[Any]]:
        """Stream every variant's answer into its column; finish with the vote choices and the exports."""
        variant_ids = list(dict.fromkeys(variant_ids or []))
        if len(variant_ids) > MAX_VARIANTS:
            raise user_error(f"Pick at most {MAX_VARIANTS} variants; {len(variant_ids)} are selected.")
        admit(self.limiter, request)
        question, context = plain_text(question), plain_text(context)
        settings = settings_from(setting_values)
        cancel = self.cancels.start(request.session_hash)
        started = time.perf_counter()
        try:
            stream = self.studio.stream(variant_ids, question, context, settings, cancel)
        except INPUT_ERRORS as error:
            self.cancels.finish(request.session_hash, cancel)
            raise user_error(error) from error
        hidden = [None, gr.Radio(visible=False), gr.Column(visible=False), gr.skip(), gr.skip()]
        answers: dict[str, Answer] = {}
        try:
            for answers in throttled(stream, lambda snapshot: all(a.finished for a in snapshot.values())):
                if any(answer.status == Status.LOADING for answer in answers.values()):
                    progress(None, desc="Loading model")
                yield [*self.slot_updates(variant_ids, answers), run_line(answers, started), *hidden]
        finally:
            self.cancels.finish(request.session_hash, cancel)
        self.speeds.record(answers.values())
        labels = {ident: self.label(ident) for ident in variant_ids}
        comparison = Comparison.from_answers(question, context, settings, answers, labels)
        vote_choices = [*variant_ids, ("All bad", ALL_BAD)]
        # Gradio copies the files into its own cache (cleaned by the app's delete_cache) before the
        # generator resumes, so the originals can go with their temporary folder.
        with tempfile.TemporaryDirectory(prefix="medalpaca-export-") as folder:
            markdown, json_file = write_exports(comparison, Path(folder))
            yield [
                *self.slot_updates(variant_ids, answers),
                run_line(answers, started),
                comparison,
                gr.Radio(choices=vote_choices, value=None, visible=True),
                gr.Column(visible=True),
                gr.DownloadButton(value=str(markdown)),
                gr.DownloadButton(value=str(json_file)),
            ]

    def clear(self, variant_ids: list[str] | None) -> list[Any]:
        """Empty the inputs and the answers; keep the selected variants' columns."""
        return ["", "", *self.slot_updates(list(variant_ids or [])), "", None, gr.Column(visible=False)]

    def stop(self, request: gr.Request) -> None:
        self.cancels.stop(request.session_hash)

    def vote(self, comparison: Comparison | None, winner: str | None) -> list[list[Any]]:
        if comparison is None:
            raise user_error("Run a comparison first, then vote for its best answer.")
        if not winner:
            raise user_error("Pick the best answer (or 'All bad') before voting.")
        try:
            self.votes.record(comparison, winner)
        except VoteError as error:
            raise user_error(error) from error
        except VoteStorageError as error:
            raise user_error(error, title="Vote not saved") from error
        gr.Info("Vote saved. Thank you!")
        return self.leaderboard()

    def leaderboard(self) -> list[list[Any]]:
        """The standings; a votes database that cannot be read gives an empty table and a notice, not a broken page."""
        try:
            return leaderboard_rows(self.votes)
        except VoteStorageError as error:
            gr.Warning(literal_html(str(error)))
            return []

    def build(self) -> None:
        disclaimer()
        defaults = self.studio.default_variants()
        variants = gr.Dropdown(
            choices=self.studio.choices(self.speeds),
            value=defaults,
            multiselect=True,
            max_choices=MAX_VARIANTS,
            label=f"Variants to compare (1 to {MAX_VARIANTS})",
            elem_id="compare-variants",
            info="Variants that share a base answer together in one batch. Slow or unavailable ones are marked.",
        )
        with gr.Row(equal_height=True):
            context = gr.Textbox(label="Context (optional)", lines=4, max_lines=12, scale=3, elem_id="compare-context")
            question = gr.Textbox(
                label="Question",
                lines=4,
                max_lines=8,
                scale=2,
                placeholder="Ask a medical question",
                elem_id="compare-question",
            )
        with gr.Row():
            submit = gr.Button("Submit", variant="primary", scale=2, elem_id="compare-submit")
            stop = gr.Button("Stop", variant="stop", scale=1)
            clear = gr.Button("Clear", scale=1)
        gr.Examples(EXAMPLES, [context, question], label="Examples from the seed report")
        controls = settings_accordion()
        run_status = gr.Markdown("", elem_id="compare-run-status", elem_classes="run-status")
        slots = []
        with gr.Row(equal_height=True):
            for index in range(MAX_VARIANTS):
                with gr.Column(visible=index < len(defaults), min_width=220, elem_classes="answer-column") as column:
                    answer = gr.Textbox(
                        label=defaults[index] if index < len(defaults) else "Answer",
                        lines=12,
                        max_lines=12,
                        interactive=False,
                        buttons=["copy"],
                        elem_classes="answer",
                    )
                    status = gr.Markdown("Ready.", elem_classes="answer-status")
                slots.append(Slot(column, answer, status))
        slot_outputs = [component for slot in slots for component in slot.outputs]
        comparison = gr.State(None)
        with gr.Column(visible=False, elem_classes="after-run") as after_run:
            with gr.Row():
                winner = gr.Radio([], label="Which answer is best?", scale=4)
                vote = gr.Button("Vote", variant="primary", scale=1, min_width=120, elem_id="compare-vote")
            with gr.Row():
                markdown_file = gr.DownloadButton("Download Markdown", size="md")
                json_file = gr.DownloadButton("Download JSON", size="md")
        with gr.Accordion("Leaderboard: wins per variant", open=True):
            leaderboard = gr.Dataframe(
                value=self.leaderboard,
                headers=LEADERBOARD_HEADERS,
                interactive=False,
                label="Votes of everyone using this app",
            )

        variants.change(self.slot_updates, variants, slot_outputs, api_visibility="private", concurrency_limit=None)
        run = gr.on(
            [submit.click, question.submit],
            self.compare,
            [variants, context, question],
            [*slot_outputs, run_status, comparison, winner, after_run, markdown_file, json_file],
            inputs_kwargs=controls.inputs,
            api_name="compare",
            show_progress_on=run_status,
            concurrency_id="generate",
        )
        run.then(self.choices, None, variants, api_visibility="private", concurrency_limit=None)
        stop.click(self.stop, None, None, api_name="stop", concurrency_limit=None)
        clear.click(
            self.clear,
            variants,
            [context, question, *slot_outputs, run_status, comparison, after_run],
            api_visibility="private",
            concurrency_limit=None,
        )
        vote.click(self.vote, [comparison, winner], leaderboard, api_name="vote", concurrency_limit=None)


def build_compare_tab(studio: Studio, votes: VoteStore, speeds: SpeedLog, limiter: RateLimiter) -> CompareTab:
    compare = CompareTab(studio, votes, speeds, limiter)
    with gr.Tab("Compare"):
        compare.build()
    return compare
