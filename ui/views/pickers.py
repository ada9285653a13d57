"""Variant pickers: they offer only what runs here, list the rest apart under them, and refuse the rest by name.

The page offers no variant this machine cannot run, but an API client may send any id. Gradio's own check of
the choices answers "not in the list of choices", which says neither which variant nor why. A picker carries
``PICKER_CLASS``, and the app checks every value sent for one (``ui.http.guard.GuardedBlocks``' value checks)
with ``refuse_unavailable`` before Gradio looks and before anything runs: a variant the registry knows but this
machine cannot run gets the studio's reason. An id the registry does not know is left to Gradio's check.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from medalpaca_core.engine import Studio
from medalpaca_core.models.registry import UnavailableVariantError
from medalpaca_core.text.plural import counted

from .common import error_html, literal_html, shown_as_message


def unavailable_list(studio: Studio) -> None:
    """Under a picker, which offers only what runs here: the variants this machine cannot run, each with why, so
    that nobody wonders where the paper's models went (and nobody picks one to see it fail)."""
    reasons = studio.unavailable()
    if not reasons:
        return
    lines = [
        f"- {literal_html(studio.variant(ident).label)} `{ident}`: {error_html(why)}" for ident, why in reasons.items()
    ]
    they = "it needs" if len(reasons) == 1 else "they need"
    label = f"Not available here: {counted(len(reasons), 'more variant')} ({they} a download or a GPU)"
    with gr.Accordion(label, open=False, elem_classes="unavailable"):
        gr.Markdown("\n".join(lines), elem_classes="hint")


PICKER_CLASS = "variant-picker"  # the elem class of every variant picker, whose values ``refuse_unavailable`` checks


def refuse_unavailable(studio: Studio, value: Any) -> None:
    """Refuse a picker's value (an id, or a list of them) that names a known variant this machine cannot run,
    with each one's reason: the page's message, as its handlers give it."""
    ids = value if isinstance(value, list) else [value]
    known = [ident for ident in ids if isinstance(ident, str) and studio.knows(ident)]
    with shown_as_message((UnavailableVariantError,)):
        studio.require_available(known)
