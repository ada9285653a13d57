"""What a comparison column shows besides its answer: the exact prompt, and what its adapter changed.

Answers differ for two reasons a reader cannot see: the prompt (template, truncation of a long
context) and the weights. The prompt view shows the prompt as the model received it: the ``Prompt``
its answer carries, decoded from the very token ids it was given (nothing fits the prompt again here).
The adapter line (``divergence``) shows where a LoRA adapter's answer leaves its base's answer.
Both only read models that the comparison has already loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..engine import Studio
from ..generation.answers import Answer, Prompt, Status
from ..models.manager import LoadedModel
from ..models.registry import Variant
from .divergence import base_of, departures


def model_of(studio: Studio, variant: Variant) -> LoadedModel:
    """The base ``variant`` runs on: read without taking its lock when it is loaded (a note only tokenizes, and
    is made while other comparisons may be generating on that base, holding the lock for seconds), else loaded."""
    return studio.loaded_base(variant) or studio.acquire(variant)[0]


def adapter_lines(studio: Studio, texts: dict[str, str]) -> dict[str, str]:
    """For each adapter whose base also answered (``texts``: variant id -> answer), where it departs from it."""
    shown = [studio.variant(ident) for ident in texts if studio.knows(ident)]
    pairs = base_of(shown, shown)
    lines: dict[str, str] = {}
    for base in set(pairs.values()):
        loaded = model_of(studio, studio.variant(base))
        mine = {adapter: b for adapter, b in pairs.items() if b == base}
        found = departures(texts, mine, loaded.tokenizer)
        lines.update({ident: change.line(ident, base) for ident, change in found.items()})
    return lines


@dataclass(frozen=True)
class ColumnNotes:
    """What a column shows under its answer once the comparison ends: its prompt and its adapter's departure."""

    prompt: Prompt | None = None  # None: nothing was loaded here for it (remote, unavailable, failed)
    change: str = ""  # the adapter line; empty for a variant that is no adapter or whose base did not answer


def is_loaded(studio: Studio, variant: Variant) -> bool:
    return not variant.remote and studio.loaded_base(variant) is not None


def column_notes(studio: Studio, answers: dict[str, Answer]) -> dict[str, ColumnNotes]:
    """Notes for every variant that answered: the prompt its answer carries, and for an adapter whose base
    answered (both loaded here) where it departs from it; nothing is loaded for the sake of a note."""
    texts = {ident: answer.text for ident, answer in answers.items() if answer.status == Status.DONE}
    local = [ident for ident in texts if studio.knows(ident) and is_loaded(studio, studio.variant(ident))]
    changes = adapter_lines(studio, {ident: texts[ident] for ident in local})
    return {ident: ColumnNotes(answers[ident].prompt, changes.get(ident, "")) for ident in texts}
