"""What the tabs share (ui/views/common.py): a run's Stop flag, errors shown as messages, paced streaming."""

from __future__ import annotations

import itertools
import queue
import threading
import time

import gradio as gr
import pytest

from medalpaca_core.text.prompts import PromptError
from ui.views.common import STREAM_INTERVAL_S, CancelBoard, paced, shown_as_message


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
    assert all(b - a >= STREAM_INTERVAL_S for a, b in itertools.pairwise(times)), "at most ~10 updates a second"
    assert shown.get(timeout=60)[0] == 6
