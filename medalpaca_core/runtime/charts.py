"""How the project's charts look: a transparent background and a mid grey ink, readable on either theme.

The app shows charts on a page whose theme the visitor picks; matplotlib's white figure is a glaring
block on the dark one, and black text vanishes on it. With no background the chart takes the page's
colour, and a grey between the two themes' text colours reads on both (and on the white of an image
viewer, for the PNGs that evaluation writes). Every chart function runs under ``themed``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

INK = "#8a94a6"  # slate grey: contrast of about 3:1 on white and on Gradio's dark background alike
STYLE = {
    "figure.facecolor": "none",
    "axes.facecolor": "none",
    "savefig.facecolor": "none",
    "savefig.transparent": True,
    "text.color": INK,
    "axes.labelcolor": INK,
    "axes.titlecolor": INK,
    "axes.edgecolor": INK,
    "xtick.color": INK,
    "ytick.color": INK,
    "legend.frameon": False,
}

P = ParamSpec("P")
R = TypeVar("R")


def themed(chart: Callable[P, R]) -> Callable[P, R]:
    """``chart`` draws (and saves, if it does) under STYLE; the figure keeps its transparent face afterwards, so
    Gradio's own rendering of a returned figure is transparent too."""

    @functools.wraps(chart)
    def drawn(*args: P.args, **kwargs: P.kwargs) -> R:
        import matplotlib  # here, not at import: the command line imports the reports without drawing

        with matplotlib.rc_context(STYLE):
            return chart(*args, **kwargs)

    return drawn
