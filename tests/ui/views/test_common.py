"""What the tabs share (ui/views/common.py): a run's Stop flag, and errors shown as messages."""

from __future__ import annotations

import gradio as gr
import pytest

from medalpaca_core.text.prompts import PromptError
from ui.views.common import CancelBoard, shown_as_message


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
