"""What a comparison column shows besides its answer: the exact prompt, and what its adapter changed.

Answers differ for two reasons a reader cannot see: the prompt (template, truncation of a long
context) and the weights. The prompt view shows the prompt as the model received it, decoded
from the very token ids it was given, with their count and whether the context was cut to fit.
The adapter line (``divergence``) shows where a LoRA adapter's answer leaves its base's answer.
Both only read models that the comparison has already loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

from medalpaca_core.arena.divergence import base_of, departures
from medalpaca_core.engine import Studio
from medalpaca_core.generation.settings import GenerationSettings
from medalpaca_core.models.manager import LoadedModel
from medalpaca_core.models.registry import Variant
from medalpaca_core.text.prompts import PromptParts, fit_prompt


@dataclass(frozen=True)
class PromptView:
    """The prompt a variant received: its text (special tokens included), its length in tokens, whether cut."""

    text: str
    tokens: int
    truncated: bool

    def caption(self) -> str:
        cut = "context truncated to fit the context window" if self.truncated else "not truncated"
        return f"{self.tokens:,} prompt tokens, {cut}"


def model_of(studio: Studio, variant: Variant) -> LoadedModel:
    """The base ``variant`` runs on: read without taking its lock when it is loaded (a note only tokenizes, and
    is made while other comparisons may be generating on that base, holding the lock for seconds), else loaded."""
    return studio.loaded_base(variant) or studio.acquire(variant)[0]


def prompt_view(studio: Studio, variant_id: str, parts: PromptParts, settings: GenerationSettings) -> PromptView:
    """The prompt ``variant_id`` gets for ``parts``, fitted as generation fits it."""
    variant = studio.variant(variant_id)
    loaded = model_of(studio, variant)
    ids, truncated = fit_prompt(
        variant.template, parts, loaded.tokenizer, loaded.context_window, settings.max_new_tokens
    )
    return PromptView(loaded.tokenizer.decode(ids), len(ids), truncated)


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

    prompt: PromptView | None = None  # None: nothing was loaded here for it (remote, unavailable, failed)
    change: str = ""  # the adapter line; empty for a variant that is no adapter or whose base did not answer


def is_loaded(studio: Studio, variant: Variant) -> bool:
    return not variant.remote and studio.loaded_base(variant) is not None


def column_notes(
    studio: Studio, texts: dict[str, str], parts: PromptParts, settings: GenerationSettings
) -> dict[str, ColumnNotes]:
    """Notes for every variant that answered (``texts``: variant id -> answer). A variant whose model is not
    loaded here (remote, unavailable) gets no prompt view; nothing is loaded for the sake of a note."""
    local = [ident for ident in texts if studio.knows(ident) and is_loaded(studio, studio.variant(ident))]
    views = {ident: prompt_view(studio, ident, parts, settings) for ident in local}
    changes = adapter_lines(studio, {ident: texts[ident] for ident in local})
    return {ident: ColumnNotes(views.get(ident), changes.get(ident, "")) for ident in texts}
