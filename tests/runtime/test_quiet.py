"""Libraries' known console noise is silenced by its exact message (or around one call), and nothing else is."""

from __future__ import annotations

import io
import logging
import warnings

import numpy as np
from matplotlib.image import imread
from transformers.utils import logging as transformers_logging

from medalpaca_core.arena.leaderboard import chart
from medalpaca_core.arena.ratings import Vote, leaderboard
from medalpaca_core.evaluation.report import bar_chart
from medalpaca_core.evaluation.scoring import ALL_STEPS, Score
from medalpaca_core.runtime import quiet

DEPRECATED = "`is_gradient_checkpointing` is deprecated and will be removed in v6. Use `is_activation_checkpointing`"


def test_the_deprecation_warning_is_ignored_and_other_warnings_still_show():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet.install()
        warnings.warn(DEPRECATED, FutureWarning, stacklevel=1)
        warnings.warn("`other_attribute` is deprecated", FutureWarning, stacklevel=1)
    assert [str(warning.message) for warning in caught] == ["`other_attribute` is deprecated"]


def test_the_bitsandbytes_kernel_line_is_dropped_and_its_other_lines_kept(caplog):
    quiet.install()
    quiet.install()  # once per process, however often it is called
    logger = logging.getLogger(quiet.BNB_LOGGER)
    assert sum(isinstance(f, quiet.DropMessage) for f in logger.filters) == 1
    with caplog.at_level(logging.WARNING, logger=quiet.BNB_LOGGER):
        logger.warning("%s: No module named 'kernels'.", quiet.BNB_KERNEL)
        logger.warning("Some other bitsandbytes warning")
    assert [record.getMessage() for record in caplog.records] == ["Some other bitsandbytes warning"]


def test_progress_bars_are_off_inside_the_block_only():
    assert transformers_logging.is_progress_bar_enabled()
    with quiet.without_progress_bars(gguf=True):
        from transformers import modeling_gguf_pytorch_utils as conversion

        assert not transformers_logging.is_progress_bar_enabled()
        assert conversion.tqdm(range(3)).disable
    assert transformers_logging.is_progress_bar_enabled() and not conversion.tqdm(range(3), file=io.StringIO()).disable


def corners(png: bytes) -> np.ndarray:
    pixels = imread(io.BytesIO(png))
    return np.array([pixels[0, 0], pixels[0, -1], pixels[-1, 0], pixels[-1, -1]])


def test_charts_are_transparent_so_that_they_take_the_themes_background():
    board = chart(leaderboard([Vote(("a", "b"), "a")] * 3))
    buffer = io.BytesIO()
    board.savefig(buffer, format="png")  # as Gradio renders a returned figure: its own savefig defaults
    assert (corners(buffer.getvalue())[:, 3] == 0).all()
    scores = {("tiny", "loglik"): {ALL_STEPS: Score(n=4, correct=2, parsed=4, chance=0.25)}}
    assert (corners(bar_chart(scores, "accuracy"))[:, 3] == 0).all()


def test_a_chart_without_scores_draws_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "No artists with labels found to put in legend" was one
        assert bar_chart({}, "nothing yet").startswith(b"\x89PNG")
