"""The Compare tab: one question to up to four variants, answers streaming side by side, then a vote and exports.

Every comparison is a ``medalpaca_core.arena.run.ComparisonRun``, which owns its life: the studio's stream,
and a ballot from the server (``medalpaca_core.arena.ballots.BallotBox``): an id, its columns in shown
order and, in blind mode, neutral labels (Model A, B, …) in a random order. The page only ever holds the
id; which variant answered in which column stays on the server until the vote, and everything a column
shows is made by ``ui.views.ballot``, which names nothing while the ballot is sealed. The vote names the
id and a column label, a tie or "all bad"; the ballot box refuses anything else before the database is
touched.

Blind mode is always on for a public deployment (a Space, or a server on a public address) and a
toggle on one's own machine. Answers are shown in read-only text boxes, which display model text
as text: whatever HTML or script a model writes is never parsed by the browser.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from medalpaca_core.arena.ballots import Ballot, BallotBox, column_label, public_deployment, ready_to_vote
from medalpaca_core.arena.export import Comparison, write_exports
from medalpaca_core.arena.run import ComparisonRun, label_of
from medalpaca_core.arena.votes import VoteError, VoteStorageError, VoteStore
from medalpaca_core.engine import Studio
from medalpaca_core.generation.answers import Answer
from medalpaca_core.models.selection import MAX_VARIANTS
from medalpaca_core.serving.ratelimit import RateLimiter
from medalpaca_core.text.answer_markdown import answer_html
from medalpaca_core.text.prompts import PromptParts

from ..views.ballot import ColumnView, column_view, run_line, vote_choices, vote_message
from ..views.common import (
    SETTING_NAMES,
    RunningTab,
    admit,
    client_address,
    disclaimer,
    finished,
    paced,
    plain_text,
    settings_accordion,
    settings_from,
    shown_as_message,
    user_error,
    while_running,
)
from ..views.leaderboard import LeaderboardPanel
from ..views.pickers import PICKER_CLASS, unavailable_list
from ..views.share_link import link_query, read_link

# The seed report's two queries: a question with the diabetes context, and one with no context.
DIABETES_CONTEXT = (  # the medAlpaca README's own example
    "Diabetes is a metabolic disease that causes high blood sugar. The symptoms include increased thirst, "
    "frequent urination, and unexplained weight loss."
)
EXAMPLES = [["What are the symptoms of diabetes?", DIABETES_CONTEXT], ["How to cure COVID-19?", ""]]
BLIND_LABEL = "Blind: hide which variant wrote which answer until I vote"
KEYS_HINT = "Enter sends the question; Shift+Enter starts a new line."
INPUT_MIN_WIDTH = 320  # px: narrower than two of these (a phone), the context and the question stack
BUTTON_MIN_WIDTH = 90  # px: Submit, Stop and Clear stay on one line on a phone
COLUMN_CLASSES, CHOSEN_CLASSES = ["answer-column"], ["answer-column", "chosen"]  # "chosen": marked (app.CSS)
PLAIN_LABEL = "Plain text: the answers exactly as the models wrote them, to read or copy"
SHOW_PLAIN = "(plain) => { document.querySelector('#compare-answers').classList.toggle('plain', plain); }"
# The link's query (from the server) made a whole URL on the page's own address, copied where the browser lets us.
MAKE_LINK = """(query) => {
    const url = location.origin + location.pathname + query;
    navigator.clipboard?.writeText(url).catch(() => {});
    return url;
}"""
FOCUS_QUESTION = "() => document.querySelector('#compare-question textarea')?.focus()"
PUBLIC_BLIND_NOTE = (
    "**Blind comparison.** The answers come as Model A, B, … in a random order; the names are shown after your vote."
)


@dataclass
class Slot:
    """One answer column: the answer, its status line, what it revealed, and the prompt it received."""

    column: gr.Column
    answer: gr.Textbox  # the plain text, with its copy button (its box shows when "Plain text" is ticked)
    formatted: gr.HTML  # the same answer as formatted text (medalpaca_core.answer_markdown)
    status: gr.Markdown
    notes: gr.Markdown
    details: gr.Accordion
    prompt: gr.Textbox

    @property
    def outputs(self) -> list[Any]:
        return [self.column, self.answer, self.status, self.notes, self.details, self.prompt, self.formatted]

    def hidden(self) -> dict[Any, Any]:
        return {
            self.column: gr.Column(visible=False),
            self.answer: gr.Textbox(value="", label="Answer"),
            self.formatted: "",
            self.status: "",
            self.notes: "",
            self.details: gr.Accordion(visible=False),
            self.prompt: "",
        }

    def show(self, view: ColumnView) -> dict[Any, Any]:
        prompt = view.prompt
        return {
            self.column: gr.Column(visible=True, elem_classes=CHOSEN_CLASSES if view.chosen else COLUMN_CLASSES),
            self.answer: gr.Textbox(value=view.text, label=view.label),
            self.formatted: answer_html(view.text),
            self.status: view.status,
            self.notes: view.notes,
            self.details: gr.Accordion(visible=prompt is not None),
            self.prompt: gr.Textbox(value=prompt.text, label=prompt.caption()) if prompt else "",
        }


@dataclass
class VoteArea:
    """Below the columns: the comparison id the page votes with, the choices, the message and the downloads."""

    comparison_id: gr.Textbox
    panel: gr.Column
    ballot_row: gr.Row
    choice: gr.Radio
    message: gr.Markdown
    next_row: gr.Row  # after the vote: New round
    markdown_file: gr.DownloadButton
    json_file: gr.DownloadButton

    @property
    def outputs(self) -> list[Any]:
        return [self.comparison_id, self.panel, self.ballot_row, self.choice, self.message, self.next_row]

    @property
    def files(self) -> list[Any]:
        return [self.markdown_file, self.json_file]


class CompareTab(RunningTab):
    """Builds the tab's widgets and holds the thin handlers that wire them to a ``ComparisonRun``, the ballot
    box and the studio."""

    def __init__(self, studio: Studio, votes: VoteStore, limiter: RateLimiter):
        super().__init__(studio, limiter)
        self.box = BallotBox.from_env(votes)
        self.public = public_deployment()
        self.rng = random.SystemRandom()  # a new round's line-up: not guessable from anything the page sees
        self.board = LeaderboardPanel(votes, exportable=not self.public)
        self.slots: list[Slot] = []

    def label(self, ident: str) -> str:
        return label_of(self.studio, ident)

    def precision(self, ident: str) -> str:
        """How the variant's weights are held ('bf16', 'int8', …); nothing for a variant the registry does not know."""
        return self.studio.precision(ident) if self.studio.knows(ident) else ""

    def preview(self, variant_ids: list[str] | None, blind: bool) -> dict[Any, Any]:
        """Before a run: one empty column per selected variant, labelled as the run will label it."""
        ids = list(dict.fromkeys(variant_ids or []))[:MAX_VARIANTS]
        updates: dict[Any, Any] = {}
        for index, slot in enumerate(self.slots):
            if index >= len(ids):
                updates.update(slot.hidden())
                continue
            label = column_label(index) if self.public or blind else ids[index]
            updates.update(slot.show(ColumnView(label, "", "Ready.")))
        return updates

    def columns(self, ballot: Ballot, answers: dict[str, Answer]) -> dict[Any, Any]:
        updates: dict[Any, Any] = {}
        for index, slot in enumerate(self.slots):
            if index < len(ballot.columns):
                answer = answers.get(ballot.columns[index])
                updates.update(slot.show(column_view(ballot, index, answer, self.label, self.precision)))
            else:
                updates.update(slot.hidden())
        return updates

    def vote_area(self, ballot: Ballot, answers: dict[str, Answer], choices: list | None = None) -> dict[Any, Any]:
        """The vote opens once every column has text (or all ended and one answered); it shows the vote after.

        ``choices`` are sent only when they change (None: as they are) and never with a value, so that a
        streamed update never clears what the visitor has just picked; no choices clear the pick too."""
        area, open_ = self.area, bool(answers) and ready_to_vote(answers)
        return {
            area.comparison_id: ballot.id,
            area.panel: gr.Column(visible=open_ or ballot.voted),
            area.ballot_row: gr.Row(visible=open_ and not ballot.voted),
            area.choice: gr.skip() if choices is None else gr.Radio(choices) if choices else gr.Radio([], value=None),
            area.message: vote_message(ballot),
            area.next_row: gr.Row(visible=ballot.voted),
        }

    def exports(self, ballot: Ballot, comparison: Comparison | None, folder: str) -> dict[Any, Any]:
        """The Markdown and JSON downloads, once the comparison has ended and may be named."""
        if comparison is None or not ballot.finished or ballot.sealed:
            return {button: gr.DownloadButton(visible=False) for button in self.area.files}
        markdown, json_file = write_exports(comparison, Path(folder))
        return {
            self.area.markdown_file: gr.DownloadButton(value=str(markdown), visible=True),
            self.area.json_file: gr.DownloadButton(value=str(json_file), visible=True),
        }

    def choices(self) -> gr.Dropdown:
        """The picker's labels again, now with the speeds measured by the run that just ended."""
        return gr.Dropdown(choices=self.studio.choices())

    def compare(
        self,
        variant_ids: list[str] | None,
        question: str,
        context: str,
        request: gr.Request,
        blind: bool | None = False,
        seed: float | None = None,
        **setting_values: float | None,
    ) -> Iterator[dict[Any, Any]]:
        """Stream every answer into its column; open the vote once every column has text; end with the exports.

        ``blind`` (ignored on a public deployment, where every comparison is blind) and the generation settings
        come as keyword inputs, after the settings in the API's order; ``seed`` is named so that API clients
        may leave it out (random), as the page's blank box does."""
        variant_ids = list(dict.fromkeys(variant_ids or []))
        if len(variant_ids) > MAX_VARIANTS:
            raise user_error(f"Pick at most {MAX_VARIANTS} variants; {len(variant_ids)} are selected.")
        admit(self.limiter, request)
        settings = settings_from({**setting_values, "seed": seed})
        started = time.perf_counter()
        answers: dict[str, Answer] = {}
        offered: list | None = None  # the vote choices the page holds
        hidden_files = {button: gr.skip() for button in self.area.files}
        with self.cancels.running(request.session_hash) as cancel:
            with shown_as_message():
                run = ComparisonRun.start(
                    self.studio,
                    self.box,
                    request.session_hash or "",
                    variant_ids,
                    plain_text(question),
                    plain_text(context),
                    settings,
                    blind=self.public or bool(blind),
                    cancel=cancel,
                )
            for answers in paced(run.stream, lambda snapshot: all(a.finished for a in snapshot.values())):
                run.show(answers)
                choices, offered = self.offer(run.ballot, answers, offered)
                yield self.page(run.ballot, answers, started, choices) | hidden_files
        final = run.finish(answers)
        # Gradio copies the files into its own cache (cleaned by the app's delete_cache) before the
        # generator resumes, so the originals can go with their temporary folder.
        with tempfile.TemporaryDirectory(prefix="medalpaca-export-") as folder:
            choices, _ = self.offer(run.ballot, answers, None)  # all of them, for a client reading only the last
            yield self.page(run.ballot, answers, started, choices) | self.exports(run.ballot, final, folder)

    @staticmethod
    def offer(ballot: Ballot, answers: dict[str, Answer], offered: list | None) -> tuple[list | None, list]:
        """(choices to send or None when the page has them already, the choices the page then holds)."""
        if ballot.voted:
            return None, offered or []
        choices = vote_choices(ballot, answers) if ready_to_vote(answers) else []
        return (None if choices == offered else choices), choices

    def page(self, ballot: Ballot, answers: dict[str, Answer], started: float, choices: list | None) -> dict[Any, Any]:
        """Every column, the run line and the vote area for ``answers`` as ``ballot`` may show them."""
        run = {self.run_status: run_line(ballot, answers, started)}
        return {**self.columns(ballot, answers), **run, **self.vote_area(ballot, answers, choices)}

    def vote(self, comparison_id: str | None, choice: str | None, request: gr.Request) -> Iterator[dict[Any, Any]]:
        """Take the vote of comparison ``comparison_id`` for column ``choice`` ("Model B", "tie", "all-bad"), then
        show the names; any vote the ballot box refuses is a message and is stored nowhere."""
        if not comparison_id:
            raise user_error("Run a comparison first, then vote for its best answer.")
        if not choice:
            raise user_error("Pick the best answer (or 'Tie' or 'All bad') before voting.")
        session = request.session_hash or ""
        try:
            ballot = self.box.vote(comparison_id, session, choice, client_address(request))
        except VoteError as error:
            raise user_error(error, title="Vote not taken") from error
        except VoteStorageError as error:
            raise user_error(error, title="Vote not saved") from error
        # No toast: the vote area says what was saved, and a toast would cover the last column.
        board = {self.board.kind: "blind" if ballot.blind else "unblinded"}  # the ratings this vote went into
        with tempfile.TemporaryDirectory(prefix="medalpaca-export-") as folder:
            revealed = {**self.columns(ballot, ballot.answers), **self.vote_area(ballot, ballot.answers)}
            yield revealed | self.exports(ballot, ballot.comparison, folder) | board

    def clear(self, variant_ids: list[str] | None, blind: bool) -> dict[Any, Any]:
        """Empty the inputs and the answers; keep the selected variants' columns."""
        return {
            self.context: "",
            self.question: "",
            **self.preview(variant_ids, blind),
            self.run_status: "",
            self.area.comparison_id: "",
            self.area.panel: gr.Column(visible=False),
        }

    def new_round(self, variant_ids: list[str] | None, blind: bool) -> dict[Any, Any]:
        """After a vote: empty inputs and columns for the next comparison; a blind one gets a fresh random line-up
        of as many variants (the voter should not know who answers), one with names shown keeps its selection."""
        ids = list(variant_ids or []) or self.studio.default_variants()
        if self.public or blind:
            ids = self.studio.fresh_round(len(ids), self.rng) or ids
        return {self.variants: gr.Dropdown(value=ids), **self.clear(ids, blind)}

    def share(
        self, variant_ids: list[str] | None, question: str, context: str, **setting_values: float | None
    ) -> dict[Any, Any]:
        """The query of a link that reopens this comparison (the page makes it a URL and copies it)."""
        parts = PromptParts(plain_text(question), plain_text(context))
        settings = settings_from(setting_values)
        return {
            self.link_query: link_query(list(variant_ids or []), parts, settings),
            self.link: gr.Textbox(visible=True),
        }

    def reopen(self, request: gr.Request) -> dict[Any, Any]:
        """On opening the page: the comparison its URL names (see ``ui.share_link``), else nothing changes."""
        shared = read_link(dict(request.query_params or {}), self.studio.knows)
        for note in shared.notes:
            gr.Warning(note)
        updates = {self.question: shared.question, self.context: shared.context, self.variants: shared.variant_ids}
        if shared.settings:
            updates |= {self.controls.inputs[name]: getattr(shared.settings, name) for name in SETTING_NAMES}
        return {component: gr.skip() if value is None else value for component, value in updates.items()}

    @property
    def reopened(self) -> list[Any]:
        """What ``reopen`` may fill in."""
        return [self.question, self.context, self.variants, *self.controls.inputs.values()]

    def stop(self, request: gr.Request) -> None:
        self.cancels.stop(request.session_hash)

    def build(self) -> None:
        disclaimer()
        defaults = self.studio.default_variants()
        self.variants = variants = gr.Dropdown(
            choices=self.studio.choices(),
            value=defaults,
            multiselect=True,
            max_choices=MAX_VARIANTS,
            label=f"Variants to compare (1 to {MAX_VARIANTS})",
            elem_id="compare-variants",
            elem_classes=PICKER_CLASS,
            info="Variants that share a base answer together in one batch. Slow ones are marked.",
        )
        unavailable_list(self.studio)
        if self.public:
            gr.Markdown(PUBLIC_BLIND_NOTE, elem_classes="hint")
        blind = gr.Checkbox(self.public, label=BLIND_LABEL, visible=not self.public, elem_id="compare-blind")
        with gr.Row(equal_height=True):  # side by side on a wide screen, stacked on a phone (min_width)
            # an API client may leave the context out, as the page may
            self.context = input_box("Context (optional)", 4, 12, 3, "compare-context", value="")
            # One line to start (it grows): Gradio submits a one-line box on Enter and lets Shift+Enter break the line.
            self.question = input_box(
                "Question", 1, 8, 2, "compare-question", placeholder="Ask a medical question", info=KEYS_HINT
            )
        with gr.Row():
            submit = gr.Button(
                "Submit", variant="primary", scale=2, min_width=BUTTON_MIN_WIDTH, elem_id="compare-submit"
            )
            stop = gr.Button(
                "Stop", variant="stop", scale=1, min_width=BUTTON_MIN_WIDTH, interactive=False, elem_id="compare-stop"
            )
            clear = gr.Button("Clear", scale=1, min_width=BUTTON_MIN_WIDTH)
        gr.Examples(EXAMPLES, [self.question, self.context], label="Examples from the seed report")
        self.controls = controls = settings_accordion()
        self.run_status = gr.Markdown("", elem_id="compare-run-status", elem_classes="run-status")
        self.slots = self.build_slots(defaults)
        self.area = self.build_vote_area()
        self.board.build()
        self.wire(variants, blind, submit, stop, clear, controls.inputs)

    def build_slots(self, defaults: list[str]) -> list[Slot]:
        plain = gr.Checkbox(False, label=PLAIN_LABEL, elem_id="compare-plain", container=False)
        plain.change(None, plain, None, js=SHOW_PLAIN)  # in the browser only: both views are on the page already
        slots = []
        with gr.Row(equal_height=True, elem_id="compare-answers"):
            for index in range(MAX_VARIANTS):
                label = column_label(index) if self.public else defaults[index] if index < len(defaults) else "Answer"
                with gr.Column(visible=index < len(defaults), min_width=220, elem_classes="answer-column") as column:
                    answer = gr.Textbox(
                        label=label, lines=12, max_lines=12, interactive=False, buttons=["copy"], elem_classes="answer"
                    )
                    formatted = gr.HTML("", elem_classes="answer-md")
                    status = gr.Markdown("Ready.", elem_classes="answer-status")
                    notes = gr.Markdown("", elem_classes="answer-notes")
                    with gr.Accordion(
                        "Prompt this model received", open=False, visible=False, elem_classes="answer-prompt"
                    ) as details:
                        prompt = gr.Textbox(label="Prompt", lines=6, max_lines=16, interactive=False)
                slots.append(Slot(column, answer, formatted, status, notes, details, prompt))
        return slots

    def build_vote_area(self) -> VoteArea:
        comparison_id = gr.Textbox(visible=False, label="Comparison id", elem_id="compare-id")
        with gr.Column(visible=False, elem_classes="after-run") as panel:
            message = gr.Markdown("", elem_id="compare-vote-message")
            with gr.Row() as ballot_row:
                choice = gr.Radio([], label="Best answer", scale=4, elem_id="compare-choice")
                vote = gr.Button("Vote", variant="primary", scale=1, min_width=120, elem_id="compare-vote")
            with gr.Row(visible=False) as next_row:
                self.new_round_button = gr.Button("New round", variant="primary", elem_id="compare-new-round")
            with gr.Row():
                markdown_file = gr.DownloadButton("Download Markdown", size="md", visible=False)
                json_file = gr.DownloadButton("Download JSON", size="md", visible=False)
                self.share_button = gr.Button("Copy a link to this comparison", size="md", elem_id="compare-share")
            self.link_query = gr.Textbox(visible=False)
            self.link = gr.Textbox(
                label="Link that reopens this comparison", visible=False, buttons=["copy"], elem_id="compare-link"
            )
        self.vote_button = vote
        return VoteArea(comparison_id, panel, ballot_row, choice, message, next_row, markdown_file, json_file)

    def wire(self, variants, blind, submit, stop, clear, settings_inputs) -> None:
        slot_outputs = [component for slot in self.slots for component in slot.outputs]
        page_outputs = [*slot_outputs, self.run_status, *self.area.outputs, *self.area.files]
        gr.on(
            [variants.change, blind.change],
            self.preview,
            [variants, blind],
            slot_outputs,
            api_visibility="private",
            concurrency_limit=None,
        )
        run = while_running(stop, [submit.click, self.question.submit]).then(
            self.compare,
            [variants, self.question, self.context],
            page_outputs,
            inputs_kwargs={**settings_inputs, "blind": blind},
            api_name="compare",
            show_progress="hidden",  # the run line says what happens (Gradio's timer flashed "0.1s" before it)
            concurrency_id="generate",
        )
        run.then(self.choices, None, variants, api_visibility="private", concurrency_limit=None)
        finished(run, stop)
        stop.click(self.stop, None, None, api_name="stop", concurrency_limit=None)
        cleared = [
            self.question,
            self.context,
            *slot_outputs,
            self.run_status,
            self.area.comparison_id,
            self.area.panel,
        ]
        clear.click(self.clear, [variants, blind], cleared, api_visibility="private", concurrency_limit=None)
        voted = self.vote_button.click(
            self.vote,
            [self.area.comparison_id, self.area.choice],
            [*page_outputs, self.board.kind],
            api_name="vote",
            concurrency_limit=None,
        )
        voted.success(self.board.show, self.board.inputs, self.board.outputs, api_visibility="private")
        fresh = self.new_round_button.click(
            self.new_round,
            [variants, blind],
            [variants, *cleared],
            api_visibility="private",
            concurrency_limit=None,
        )
        fresh.then(None, js=FOCUS_QUESTION)
        shared = self.share_button.click(
            self.share,
            [variants, self.question, self.context],
            [self.link_query, self.link],
            inputs_kwargs=settings_inputs,
            api_visibility="private",
            concurrency_limit=None,
        )
        shared.success(None, self.link_query, self.link, js=MAKE_LINK)


def build_compare_tab(studio: Studio, votes: VoteStore, limiter: RateLimiter) -> CompareTab:
    compare = CompareTab(studio, votes, limiter)
    with gr.Tab("Compare"):
        compare.build()
    return compare


def input_box(label: str, lines: int, max_lines: int, scale: int, elem_id: str, **options: Any) -> gr.Textbox:
    """One of the two input boxes: beside the other on a wide screen, under it on a phone (``min_width``)."""
    return gr.Textbox(
        label=label,
        lines=lines,
        max_lines=max_lines,
        scale=scale,
        min_width=INPUT_MIN_WIDTH,
        elem_id=elem_id,
        **options,
    )
