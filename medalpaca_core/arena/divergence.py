"""What an adapter changes: where its answer departs from its base's answer, and how much of it stays.

When a base and its LoRA adapters answer one question in one batch, the base's answer is the
adapter's counterfactual: the same weights, prompt and decoding without the adapter. Under greedy
decoding the two agree token for token until the adapter first tips the choice, and everything
after follows from that token, so the first departure is the adapter's first decision of its own.
The share of the base's tokens the adapter's answer kept (in order, by ``difflib``'s matching
blocks) says whether it rewrote the answer or changed a word.

Both answers are tokenized with the base's tokenizer (adapters share it), so tokens compare
like with like.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..models.registry import Variant

IDENTICAL_NOTE = "this adapter changed nothing here"
PREFIX_CHARS = 80  # the shared text shown before the departure, at most (its end, where the departure is)


@dataclass(frozen=True)
class Departure:
    """Where an adapter's answer parts from its base's (token index), what each said there, the shared text."""

    index: int | None  # None: identical
    adapter_token: str  # "" when the adapter's answer ended there
    base_token: str  # "" when the base's answer ended there
    prefix: str  # the text both answers share, up to the departure
    kept: float  # share of the base's tokens the adapter's answer kept, in order

    @property
    def identical(self) -> bool:
        return self.index is None

    def line(self, adapter: str, base: str) -> str:
        """One sentence for the adapter's column, naming the adapter and its base: two adapters' lines then
        read apart even when they depart at the same token."""
        if self.identical:
            return f"{adapter} answered exactly as its base {base}: {IDENTICAL_NOTE}."
        shared = self.prefix if len(self.prefix) <= PREFIX_CHARS else "…" + self.prefix[-PREFIX_CHARS:]
        if not self.adapter_token:
            change = f"stops where {base} goes on"
        elif not self.base_token:
            change = f"goes on with {self.adapter_token!r} where {base} stops"
        else:
            change = f"says {self.adapter_token!r} where {base} says {self.base_token!r}"
        where = f"after {shared!r}" if self.prefix else "from its first token"
        return (
            f"{adapter} departs from its base {base} at token {self.index + 1}: {change}, {where}. "
            f"It keeps {self.kept:.0%} of {base}'s tokens."
        )


def departure(base: Sequence[int], adapter: Sequence[int], decode: Callable[[Sequence[int]], str]) -> Departure:
    """Compare two answers' token ids; ``decode`` turns ids back into text (the tokenizer's ``decode``)."""
    base, adapter = list(base), list(adapter)
    matcher = difflib.SequenceMatcher(None, base, adapter, autojunk=False)
    kept = sum(block.size for block in matcher.get_matching_blocks()) / len(base) if base else float(not adapter)
    if base == adapter:
        return Departure(None, "", "", decode(base), 1.0)
    index = next(
        (n for n, (a, b) in enumerate(zip(base, adapter, strict=False)) if a != b), min(len(base), len(adapter))
    )
    adapter_token = decode(adapter[index : index + 1]) if index < len(adapter) else ""
    base_token = decode(base[index : index + 1]) if index < len(base) else ""
    return Departure(index, adapter_token, base_token, decode(base[:index]), kept)


def base_of(adapters: Sequence[Variant], shown: Sequence[Variant]) -> dict[str, str]:
    """For each adapter among ``adapters``, the id of its base variant among ``shown`` (same base, precision)."""
    bases = {(v.base, v.quantization, v.dtype): v.id for v in shown if not v.adapter}
    return {
        v.id: bases[(v.base, v.quantization, v.dtype)]
        for v in adapters
        if v.adapter and (v.base, v.quantization, v.dtype) in bases
    }


def departures(texts: dict[str, str], pairs: dict[str, str], tokenizer: object) -> dict[str, Departure]:
    """Departures of every adapter in ``pairs`` (adapter id -> base id) from its base, by their answer ``texts``."""

    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]  # type: ignore[operator]

    def decode(tokens: Sequence[int]) -> str:
        return tokenizer.decode(tokens, skip_special_tokens=True)  # type: ignore[attr-defined]

    return {
        adapter: departure(ids(texts[base]), ids(texts[adapter]), decode)
        for adapter, base in pairs.items()
        if adapter in texts and base in texts
    }
