"""The decode section: single-stream decode speed and time to first token per precision and for a LoRA adapter."""

from __future__ import annotations

import dataclasses
import statistics

from benchmarks.common import Row
from benchmarks.reference import Anchor
from benchmarks.workload import timed_answer
from medalpaca_core.engine import Studio

DECODE_VARIANTS = ("smol-fp32", "smol-base", "smol-int8", "smol-nf4", "bench-lora-0")


def decode_rows(
    studio: Studio, repeats: int, anchor: Anchor | None = None, variants: tuple[str, ...] = DECODE_VARIANTS
) -> list[Row]:
    """Single-stream decode speed and time to first token per precision and for a LoRA adapter.

    Each precision's greedy answer is compared with the bf16 base's (``smol-base``, when measured):
    a faster variant is only worth its speed if it answers like the model it stands for.
    """
    rows, texts = [], {}
    for variant_id in variants:
        timed_answer(studio, [variant_id])  # load and warm up
        answers = [timed_answer(studio, [variant_id])[1][variant_id] for _ in range(repeats)]
        stats = [answer.stats for answer in answers]
        texts[variant_id] = answers[-1].text
        speed = statistics.median(s.tokens_per_s for s in stats)
        ttft = statistics.median(s.ttft_s for s in stats)
        variant = studio.variant(variant_id)
        rows.append(
            Row(
                "decode",
                f"{variant_id} ({variant.kind}, {studio.base_key(variant).dtype})",
                f"{speed:.1f} tok/s",
                f"first token {ttft:.2f} s; prompt {stats[0].prompt_tokens} tokens"
                + (f"; {anchor.ratio(speed)}" if anchor else ""),
                "python -m benchmarks.inference",
            )
        )
    return [_with_agreement(studio, row, variant_id, texts) for row, variant_id in zip(rows, variants, strict=True)]


def _with_agreement(studio: Studio, row: Row, variant_id: str, texts: dict[str, str]) -> Row:
    """``row`` with how far ``variant_id``'s greedy answer agrees with the bf16 base's (precisions only)."""
    from medalpaca_core.arena.divergence import departure

    reference = "smol-base"
    if variant_id == reference or reference not in texts or studio.variant(variant_id).adapter:
        return row
    tokenizer = studio.acquire(studio.variant(reference))[0].tokenizer

    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    parted = departure(ids(texts[reference]), ids(texts[variant_id]), tokenizer.decode)
    agreement = (
        "the same greedy answer as bf16"
        if parted.identical
        else f"greedy answer equals bf16's for {parted.index} tokens, keeps {parted.kept:.0%} of them"
    )
    return dataclasses.replace(row, detail=f"{row.detail}; {agreement}")
