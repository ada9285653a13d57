"""What a comparison column shows besides its answer: the exact prompt, and what its adapter changed.

Answers differ for two reasons a reader cannot see: the prompt (template, truncation of a long
context) and the weights. The prompt view shows the prompt as the model received it, decoded
from the very token ids it was given, with their count and whether the context was cut to fit.
The adapter line (``divergence``) shows where a LoRA adapter's answer leaves its base's answer.
Both only read models that the comparison has already loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

from .divergence import base_of, departures
from .engine import Studio
from .generation import GenerationSettings
from .prompts import PromptParts, fit_prompt


@dataclass(frozen=True)
class PromptView:
    """The prompt a variant received: its text (special tokens included), its length in tokens, whether cut."""

    text: str
    tokens: int
    truncated: bool

    def caption(self) -> str:
        cut = "context truncated to fit the context window" if self.truncated else "not truncated"
        return f"{self.tokens:,} prompt tokens, {cut}"


def prompt_view(studio: Studio, variant_id: str, parts: PromptParts, settings: GenerationSettings) -> PromptView:
    """The prompt ``variant_id`` gets for ``parts``, fitted as generation fits it."""
    variant = studio.variant(variant_id)
    loaded, _ = studio.acquire(variant)
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
        loaded, _ = studio.acquire(studio.variant(base))
        mine = {adapter: b for adapter, b in pairs.items() if b == base}
        lines.update({ident: change.line() for ident, change in departures(texts, mine, loaded.tokenizer).items()})
    return lines
