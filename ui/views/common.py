"""What every tab shares: the disclaimer, generation settings, input checks, error messages, escaping, Stop.

Everything a handler receives may come from a script calling the API rather than from the page, so
inputs are checked here, on the server: text is made into plain valid text, settings are range-checked,
and every run of a model first passes the per-client rate limit.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import gradio as gr

from medalpaca_core.engine import Studio
from medalpaca_core.generation.answers import Answer, FinishReason, Stats, Status
from medalpaca_core.generation.settings import KNOBS, PRESETS, GenerationSettings, Knob, SettingsError
from medalpaca_core.models.registry import UnavailableVariantError, UnknownVariantError
from medalpaca_core.runtime.paths import public_paths
from medalpaca_core.serving.clients import client_key
from medalpaca_core.serving.ratelimit import RateLimited, RateLimiter
from medalpaca_core.text.plural import counted
from medalpaca_core.text.prompts import PromptError
from medalpaca_core.text.visitor import plain_text

DISCLAIMER = (
    "⚕ **Research demo — not medical advice.** These models make things up, including plausible but wrong "
    "doses and diagnoses. Never use an answer to diagnose or treat anyone; consult a health professional."
)
# Input mistakes the core reports before any model runs; they become a message in the page.
INPUT_ERRORS = (PromptError, SettingsError, UnknownVariantError, UnavailableVariantError)
STREAM_INTERVAL_S = 0.1  # at most ~10 page updates a second, whatever the token rate

T = TypeVar("T")


def disclaimer() -> gr.Markdown:
    return gr.Markdown(DISCLAIMER, elem_classes="disclaimer")


def literal_html(text: str) -> str:
    """Text for a component that renders HTML (Markdown, the chatbot): tags are shown, never parsed."""
    return html.escape(text, quote=False)


def user_error(error: Exception | str, title: str = "Cannot run this") -> gr.Error:
    """A modal with the message; escaped, since gr.Error renders HTML and ids come from users.

    Kept out of the server log: a refused input is not a fault of the server, and a traceback for
    each one would bury the real faults.
    """
    return gr.Error(error_html(plain_text(error)), title=title, print_exception=False)


@contextmanager
def shown_as_message(errors: tuple[type[Exception], ...] = INPUT_ERRORS) -> Iterator[None]:
    """Errors of these kinds raised inside become a message in the page (``user_error``), not a failed event."""
    try:
        yield
    except errors as error:
        raise user_error(error) from error


def error_html(text: str) -> str:
    """An error for the page: shown as text, and naming no absolute path of this server (``public_paths``)."""
    return literal_html(public_paths(text))


WAITING = {
    Status.QUEUED: "Waiting for its model…",
    Status.LOADING: "Loading the model (first use: a few seconds)…",
}


# How an answer ended, in the words of the person reading it (the finish reasons are the code's words).
ENDINGS = {
    FinishReason.EOS: "ended by itself",
    FinishReason.STOP: "ended by itself",  # the template's end marker: the model's own way of ending
    FinishReason.LENGTH: "ended at the {tokens}-token limit",
    FinishReason.CANCELLED: "stopped by you",
}


def ending(stats: Stats) -> tuple[str, str]:
    """(mark, words): ('✓', 'ended by itself'), ('✓', 'ended at the 128-token limit') or ('⏹', 'stopped by you');
    a stopped answer gets no tick: it is not all the model would have said."""
    mark = "⏹" if stats.finish_reason == FinishReason.CANCELLED else "✓"
    return mark, ENDINGS.get(stats.finish_reason, "ended").format(tokens=stats.new_tokens)


def finished_line(stats: Stats, precision: str = "") -> str:
    """A finished answer's line: '✓ bf16 · 33 tokens · ended by itself · 25.1 tok/s · first token after 0.12 s,
    1.3 s in all · 331 MB', plus a truncation notice; the precision and the memory only where known."""
    mark, words = ending(stats)
    ttft = f"first token after {stats.ttft_s:.2f} s, " if stats.ttft_s is not None else ""
    parts = [
        f"{mark} {precision}".strip(),
        counted(stats.new_tokens, "token"),
        words,
        f"{stats.tokens_per_s:.1f} tok/s",
        f"{ttft}{stats.wall_s:.1f} s in all",
        f"{stats.memory_bytes / 1024**2:.0f} MB" if stats.memory_bytes else "",
        "input truncated to fit the context window" if stats.truncated else "",
    ]
    return " · ".join(part for part in parts if part)


def answer_status(answer: Answer, precision: str = "") -> str:
    """The line under an answer, in Compare's columns and under the Chat: what it is doing, or what it cost
    (``precision``: how the variant's weights are held, when the page may say it)."""
    if answer.status == Status.ERROR:
        return "⚠ " + error_html(answer.error or "failed")
    if answer.status == Status.DONE and answer.stats:
        return literal_html(finished_line(answer.stats, precision))
    if answer.status == Status.GENERATING:
        tokens = answer.stats.new_tokens if answer.stats else 0
        return f"Generating… {counted(tokens, 'token')}"
    return WAITING[answer.status]


def client_address(request: gr.Request | None) -> str:
    """Whom a request comes from, for the rate limit: the socket's address, or the first forwarded one
    when the request came through a trusted proxy (a Space's, or MEDALPACA_TRUSTED_PROXY; see SECURITY.md)."""
    client = getattr(request, "client", None)
    headers = getattr(request, "headers", None) or {}
    if hasattr(headers, "getlist"):  # starlette's headers: every X-Forwarded-For line
        forwarded = headers.getlist("x-forwarded-for")
    else:  # a queued request's plain dict
        forwarded = [headers.get("x-forwarded-for", "")]
    return client_key(getattr(client, "host", None), forwarded)


def admit(limiter: RateLimiter, request: gr.Request | None, units: int = 1, what: str = "") -> None:
    """Count a model run (``units`` requests' worth) against the client's rate limit, or refuse it with the time
    to wait."""
    try:
        limiter.admit(client_address(request), units, what)
    except RateLimited as error:
        raise user_error(error, title="Too many requests") from error


def paced(snapshots: Iterable[T], finished: Callable[[T], bool]) -> Iterator[T]:
    """Pass on every snapshot it pulls, but pull the next one no sooner than an interval after the last: the
    studio's stream hands over the latest state when pulled (``engine.latest``), so the page gets at most ~10
    updates a second and never waits on a snapshot it held back (a run that pauses still shows all it has)."""
    for snapshot in snapshots:
        sent = time.monotonic()
        yield snapshot
        if not finished(snapshot):
            time.sleep(max(0.0, sent + STREAM_INTERVAL_S - time.monotonic()))


class CancelBoard:
    """One cancel flag per browser session, so Stop ends that session's generation and nobody else's.

    Stop sets the flag instead of cancelling the Gradio event: generation then ends cleanly and the
    answers keep their text and stats (finish reason "cancelled").
    """

    def __init__(self) -> None:
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def start(self, session: str | None) -> threading.Event:
        event = threading.Event()
        with self._lock:
            self._events[session or ""] = event
        return event

    def stop(self, session: str | None) -> None:
        with self._lock:
            event = self._events.pop(session or "", None)
        if event is not None:
            event.set()

    @contextmanager
    def running(self, session: str | None) -> Iterator[threading.Event]:
        """The session's flag for the length of one run: Stop sets it, and however the run ends it is finished."""
        event = self.start(session)
        try:
            yield event
        finally:
            self.finish(session, event)

    def finish(self, session: str | None, event: threading.Event) -> None:
        """The handler is done (finished, failed, or closed because its client left): whatever still
        runs for it stops at the next token, without waiting for the garbage collector to close the stream."""
        event.set()
        with self._lock:
            if self._events.get(session or "") is event:
                del self._events[session or ""]


class RunningTab:
    """What every tab that runs models holds: the studio it asks, the rate limit its runs count against, and
    one Stop flag per browser session."""

    def __init__(self, studio: Studio, limiter: RateLimiter) -> None:
        self.studio, self.limiter = studio, limiter
        self.cancels = CancelBoard()


def while_running(stop: gr.Button, triggers: list[Any]) -> Any:
    """The event that enables ``stop`` when one of ``triggers`` starts a run; chain the run to it with ``.then``
    and end the chain with :func:`finished`. A Stop that can be pressed when nothing runs would look broken."""
    return gr.on(triggers, lambda: gr.Button(interactive=True), None, stop, api_visibility="private", queue=False)


def finished(run: Any, stop: gr.Button) -> None:
    """After ``run`` (however it ended: done, stopped, refused), ``stop`` is disabled again."""
    run.then(lambda: gr.Button(interactive=False), None, stop, api_visibility="private", queue=False)


# The settings a page sends, by name (``KNOBS``): what an event receives as keyword inputs and a client sends.
SETTING_NAMES = tuple(knob.name for knob in KNOBS)
PRESET_KNOBS = [knob for knob in KNOBS if not knob.optional]  # a preset sets these; the seed stays as typed


@dataclass
class SettingsControls:
    """The generation-settings widgets of one tab: the preset, and one widget per knob (``KNOBS``).

    ``inputs`` goes to an event as ``inputs_kwargs``: the handler takes the values as ``**settings`` and makes
    them one ``GenerationSettings`` with :func:`settings_from`, so no setting travels by position. A
    gradio_client caller sees them as the parameters after the handler's own, named as in ``SETTING_NAMES``.
    """

    preset: gr.Radio
    inputs: dict[str, gr.components.Component]


def knob_widget(knob: Knob, start: GenerationSettings) -> gr.components.Component:
    """A slider from the preset's value, or for an optional knob a number box that may stay blank."""
    if knob.optional:
        return gr.Number(value=None, minimum=knob.low, maximum=knob.high, step=knob.step, label=knob.label)
    value = getattr(start, knob.name)
    return gr.Slider(knob.low, knob.high, value=value, step=knob.step, label=knob.label)


def settings_accordion(preset: str = "greedy") -> SettingsControls:
    """The preset and one widget per knob; a preset fills in the sliders."""
    start = PRESETS[preset]
    with gr.Accordion("Generation settings", open=False):
        gr.Markdown(
            "Temperature 0 is greedy decoding (the same answer every time). Above 0 the model samples, "
            "using top_p and top_k; the paper's preset is temperature 0.4, top_p 0.9, top_k 50.",
            elem_classes="hint",
        )
        controls = SettingsControls(
            preset=gr.Radio(
                [("Greedy", "greedy"), ("Sampling (the paper's)", "sampling")], value=preset, label="Preset"
            ),
            inputs={knob.name: knob_widget(knob, start) for knob in KNOBS},
        )
    controls.preset.change(
        apply_preset,
        controls.preset,
        [controls.inputs[knob.name] for knob in PRESET_KNOBS],
        api_visibility="private",
        concurrency_limit=None,
    )
    return controls


def apply_preset(name: str) -> tuple[float, ...]:
    return tuple(getattr(PRESETS[name], knob.name) for knob in PRESET_KNOBS)


def knob_value(knob: Knob, value: Any) -> float | None:
    """A submitted value as its knob's type: None stays None where the knob allows it; a typed whole number (the
    seed's box) must be whole, a slider's value is converted as it comes (``int`` for whole-number knobs)."""
    if value is None and knob.optional:
        return None
    if knob.optional and knob.kind is int and value != int(value):
        raise SettingsError(f"Invalid generation settings: the {knob.name} must be a whole number, not {value}")
    return knob.kind(value)


def settings_from(values: Mapping[str, Any]) -> GenerationSettings:
    """The submitted settings (``SETTING_NAMES`` to values) as one validated ``GenerationSettings``; values the
    page cannot send (NaN, fractions of a token, a seed that is not a whole number: all possible through the
    API) raise gr.Error."""
    try:
        return GenerationSettings(**{knob.name: knob_value(knob, values[knob.name]) for knob in KNOBS}).validated()
    except SettingsError as error:
        raise user_error(error) from error
    except (TypeError, ValueError, OverflowError) as error:  # int(NaN), int(None), int(inf)
        raise user_error(f"Invalid generation settings: {error}") from error
