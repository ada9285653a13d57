"""What every tab shares: the medical disclaimer, generation settings, error messages, text escaping, Stop."""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import gradio as gr

from medalpaca_core.generation import PRESETS, GenerationSettings, SettingsError
from medalpaca_core.prompts import PromptError
from medalpaca_core.registry import UnknownVariantError

DISCLAIMER = (
    "⚕ **Research demo — not medical advice.** These models make things up, including plausible but wrong "
    "doses and diagnoses. Never use an answer to diagnose or treat anyone; consult a health professional."
)
# Input mistakes the core reports before any model runs; they become a message in the page.
INPUT_ERRORS = (PromptError, SettingsError, UnknownVariantError)
STREAM_INTERVAL_S = 0.1  # at most ~10 page updates a second, whatever the token rate

T = TypeVar("T")


def disclaimer() -> gr.Markdown:
    return gr.Markdown(DISCLAIMER, elem_classes="disclaimer")


def literal_html(text: str) -> str:
    """Text for a component that renders HTML (Markdown, the chatbot): tags are shown, never parsed."""
    return html.escape(text, quote=False)


def user_error(error: Exception) -> gr.Error:
    """A modal with the core's message; escaped, since gr.Error renders HTML and ids come from users."""
    return gr.Error(html.escape(str(error)), title="Cannot run this")


def throttled(snapshots: Iterable[T], finished: Callable[[T], bool]) -> Iterator[T]:
    """Pass on the first snapshot, then at most one per interval, and always the last and finished ones."""
    last_sent, pending = 0.0, None
    for snapshot in snapshots:
        now = time.monotonic()
        if finished(snapshot) or now - last_sent >= STREAM_INTERVAL_S:
            last_sent, pending = now, None
            yield snapshot
        else:
            pending = snapshot
    if pending is not None:
        yield pending


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

    def finish(self, session: str | None, event: threading.Event) -> None:
        with self._lock:
            if self._events.get(session or "") is event:
                del self._events[session or ""]


@dataclass
class SettingsControls:
    """The generation-settings widgets of one tab; ``inputs`` is what a handler receives."""

    preset: gr.Radio
    temperature: gr.Slider
    top_p: gr.Slider
    top_k: gr.Slider
    max_new_tokens: gr.Slider
    seed: gr.Number

    @property
    def inputs(self) -> list[gr.components.Component]:
        return [self.temperature, self.top_p, self.top_k, self.max_new_tokens, self.seed]


def settings_accordion(preset: str = "greedy") -> SettingsControls:
    """Preset, temperature, top_p, top_k, max new tokens, seed; a preset fills in the sliders."""
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
            temperature=gr.Slider(0, 2, value=start.temperature, step=0.05, label="Temperature (0 = greedy)"),
            top_p=gr.Slider(0.05, 1, value=start.top_p, step=0.05, label="top_p"),
            top_k=gr.Slider(0, 200, value=start.top_k, step=1, label="top_k (0 = off)"),
            max_new_tokens=gr.Slider(1, 512, value=start.max_new_tokens, step=1, label="Max new tokens"),
            seed=gr.Number(value=None, precision=0, label="Seed (blank = random; only matters when sampling)"),
        )
    controls.preset.change(
        apply_preset,
        controls.preset,
        [controls.temperature, controls.top_p, controls.top_k, controls.max_new_tokens],
        api_visibility="private",
        concurrency_limit=None,
    )
    return controls


def apply_preset(name: str) -> tuple[float, float, int, int]:
    preset = PRESETS[name]
    return preset.temperature, preset.top_p, preset.top_k, preset.max_new_tokens


def settings_from(
    temperature: float, top_p: float, top_k: float, max_new_tokens: float, seed: float | None
) -> GenerationSettings:
    """The sliders as validated settings; out-of-range values (possible through the API) raise gr.Error."""
    try:
        return GenerationSettings(
            max_new_tokens=int(max_new_tokens),
            temperature=float(temperature),
            top_p=float(top_p),
            top_k=int(top_k),
            seed=None if seed is None else int(seed),
        ).validated()
    except SettingsError as error:
        raise user_error(error) from error
