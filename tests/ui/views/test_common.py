"""What the tabs share (ui/views/common.py): a run's Stop flag, errors shown as messages, paced streaming."""

from __future__ import annotations

import itertools
import math
import queue
import threading
import time

import gradio as gr
import pytest

from medalpaca_core.generation.settings import GenerationSettings
from medalpaca_core.text.prompts import PromptError
from tests.speed.sitecustomize import shortest_wait
from ui.views.common import SETTING_NAMES, STREAM_INTERVAL_S, CancelBoard, paced, settings_from, shown_as_message


def test_a_run_holds_its_sessions_flag_until_it_ends_however_it_ends():
    board = CancelBoard()
    with board.running("a") as flag_a, board.running("b") as flag_b:
        board.stop("a")
        assert flag_a.is_set() and not flag_b.is_set(), "Stop ends its own session's run only"
    with pytest.raises(RuntimeError), board.running("c") as flag_c:
        raise RuntimeError("the run failed")
    assert flag_c.is_set(), "whatever still runs for a failed run stops at its next token"
    board.stop("c")  # nothing left to stop: no error


def test_listed_errors_become_messages_and_others_pass():
    with pytest.raises(gr.Error, match="the question is empty"), shown_as_message():
        raise PromptError("the question is empty")
    with pytest.raises(KeyError), shown_as_message():
        raise KeyError("a bug, not a visitor's mistake")
    with pytest.raises(gr.Error, match="disk full"), shown_as_message((OSError,)):
        raise OSError("disk full")


def test_a_run_that_pauses_still_shows_everything_it_wrote():
    """Tokens faster than the page updates, then a pause (a slow step, a run held by a test): every snapshot pulled
    reaches the page at once, spaced by the update interval; none waits for the run to go on."""
    go_on, shown = threading.Event(), queue.Queue()

    def snapshots():
        yield from range(1, 6)
        go_on.wait()
        yield 6

    consumer = threading.Thread(
        target=lambda: [shown.put((s, time.monotonic())) for s in paced(snapshots(), lambda s: s == 6)]
    )
    consumer.start()
    try:
        before_the_pause_ends = [shown.get(timeout=60) for _ in range(5)]
    finally:
        go_on.set()
        consumer.join(60)
    assert [s for s, _ in before_the_pause_ends] == [1, 2, 3, 4, 5]
    times = [t for _, t in before_the_pause_ends]
    spacing = shortest_wait(STREAM_INTERVAL_S)  # the interval itself, but a tenth of it at MEDALPACA_TEST_SPEED=0.1
    assert all(b - a >= spacing for a, b in itertools.pairwise(times)), "at most ~10 updates a second"
    assert shown.get(timeout=60)[0] == 6


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ((0, 1, 0, math.nan, None), "cannot convert float NaN to integer"),
        ((0, 1, math.inf, 16, None), "cannot convert float infinity to integer"),
        ((math.nan, 1, 0, 16, None), "temperature must be between 0 and 5"),
        ((0, 1, 0, None, None), "Invalid generation settings"),
        ((0.5, 1, 0, 16, 1.5), "seed must be a whole number"),
        ((0.5, 1, 0, 16, 2.0**40), r"seed must be 0\.\.4294967295"),
        ((0.5, 1, 0, 16, math.nan), "Invalid generation settings"),
    ],
)
def test_settings_no_page_can_send_are_messages(settings, message):
    with pytest.raises(gr.Error, match=message):
        settings_from(dict(zip(SETTING_NAMES, settings, strict=True)))


def test_settings_arrive_as_one_generation_settings():
    sent = {"temperature": 0.4, "top_p": 0.9, "top_k": 50.0, "max_new_tokens": 16.0, "seed": 7.0}
    assert settings_from(sent) == GenerationSettings(max_new_tokens=16, temperature=0.4, top_p=0.9, top_k=50, seed=7)
