"""The side-by-side section: K variants sharing one base in one batch, against one after the other."""

from __future__ import annotations

import statistics

from benchmarks.common import Row
from benchmarks.reference import Anchor
from benchmarks.workload import timed_answer
from medalpaca_core.engine import Studio


def compare_rows(studio: Studio, repeats: int, anchor: Anchor | None = None) -> list[Row]:
    """K variants sharing one base: one batched generate vs one after the other.

    K=1 is the base alone; K=2..4 add LoRA adapters, which a batch applies per row through the fused
    multi-LoRA forward (``medalpaca_core.generation.multilora``; one variant alone takes PEFT's plain path, see
    ``LoadedModel.rows_adapters``). Then K=4 again with the other ways to apply the adapters per row.
    """
    ids = ["smol-base", "bench-lora-0", "bench-lora-1", "bench-lora-2"]
    timed_answer(studio, ids)  # loads all adapters
    one = statistics.median(timed_answer(studio, ids[:1])[0] for _ in range(repeats))
    rows = []
    for k in range(1, len(ids) + 1):
        runs = [timed_answer(studio, ids[:k]) for _ in range(repeats)]
        batched = statistics.median(elapsed for elapsed, _ in runs)
        # decode rate of all rows together, counted like llama.cpp's single stream (after the first token)
        aggregate = statistics.median(sum(a.stats.tokens_per_s for a in answers.values()) for _, answers in runs)
        sequential = statistics.median(sum(timed_answer(studio, [v])[0] for v in ids[:k]) for _ in range(repeats))
        rows.append(
            Row(
                "side-by-side",
                f"K={k} variants on one base",
                f"{batched:.1f} s batched",
                f"{batched / one:.2f}x of K=1; one after the other {sequential:.1f} s ({sequential / one:.2f}x); "
                f"decode {aggregate:.1f} tok/s in all" + (f" ({anchor.ratio(aggregate)})" if anchor else ""),
                "python -m benchmarks.inference",
            )
        )
    return rows + strategy_rows(studio, ids, repeats, one)


def strategy_rows(studio: Studio, ids: list[str], repeats: int, one: float) -> list[Row]:
    """K=4 with the fused path's other strategy, and with PEFT's own ``adapter_names`` loop (the old way)."""
    from medalpaca_core.generation.multilora import FusedLoRA

    loaded, _ = studio.acquire(studio.variant(ids[1]))
    gather = FusedLoRA(loaded.model, "gather")
    ways = {
        "fused, gather (gathered bmm)": lambda: gather,
        "PEFT adapter_names (per-adapter loop)": lambda: None,
    }
    rows = []
    for label, fused in ways.items():
        loaded.fused_adapters = fused  # an instance attribute: rows_adapters asks it for the stacks
        try:
            timed_answer(studio, ids)
            batched = statistics.median(timed_answer(studio, ids)[0] for _ in range(repeats))
        finally:
            del loaded.fused_adapters
        rows.append(
            Row(
                "side-by-side",
                f"K={len(ids)}, {label}",
                f"{batched:.1f} s batched",
                f"{batched / one:.2f}x of K=1 (the rows above: fused, concat, the default)",
                "python -m benchmarks.inference",
            )
        )
    return rows
