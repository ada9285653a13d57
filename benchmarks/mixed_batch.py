"""CPU seconds of one batched answer, per way of applying the adapters: a measure that a busy machine does not skew.

Wall-clock rows (``benchmarks.inference``) need a quiet machine. This one runs every generation on one
thread and counts the process's CPU seconds, which other processes on the machine barely change, for:
the base alone, K=2..4 variants on the fused path (concat, gather), K=4 through PEFT's
``adapter_names`` loop, and a plain batch of 4 bare-base rows (the floor: no adapter work at all).
Same prompt and settings as the other benchmarks, ``--tokens`` new tokens (default 32).

    .venv/bin/python -m benchmarks.mixed_batch [--repeats 3] [--tokens 32]
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import Row, whole_number_options
from benchmarks.workload import CONTEXT, QUESTION, bench_registry, make_adapters
from medalpaca_core.engine import Studio
from medalpaca_core.generation.cpu_share import CPU_SHARE
from medalpaca_core.generation.multilora import FusedLoRA
from medalpaca_core.generation.settings import GenerationSettings
from medalpaca_core.models.default_model import DEFAULT_ALIAS
from medalpaca_core.models.manager import ModelManager
from medalpaca_core.models.registry import Variant

COMMAND = "python -m benchmarks.mixed_batch"
LORAS = ["bench-lora-0", "bench-lora-1", "bench-lora-2"]
BARE = [f"bare-{n}" for n in range(4)]  # the base under four names: a batch of 4 rows without adapters


def cpu_seconds(studio: Studio, ids: list[str], settings: GenerationSettings, repeats: int) -> float:
    """Median process CPU time of one batched answer of ``ids`` (after a warm-up)."""
    studio.ask(ids, QUESTION, CONTEXT, settings=settings)
    times = []
    for _ in range(repeats):
        started = time.process_time()
        studio.ask(ids, QUESTION, CONTEXT, settings=settings)
        times.append(time.process_time() - started)
    return statistics.median(times)


def run(repeats: int = 3, tokens: int = 32) -> list[Row]:
    import torch

    torch.set_num_threads(1)
    CPU_SHARE.cores = 1  # every generation on one thread: CPU seconds then stand for one core's wall time
    settings = GenerationSettings(max_new_tokens=tokens, min_new_tokens=tokens)
    with tempfile.TemporaryDirectory() as scratch:
        registry = bench_registry(make_adapters(3, Path(scratch)))
        for ident in BARE:
            registry.add(Variant(id=ident, label=ident, base=DEFAULT_ALIAS))
        studio = Studio(registry, ModelManager(device="cpu"))
        loaded, _ = studio.acquire(registry.get(LORAS[0]))
        for ident in LORAS[1:]:
            studio.acquire(registry.get(ident))
        gather = FusedLoRA(loaded.model, "gather")
        ways: list[tuple[str, list[str], Callable[[], FusedLoRA | None] | None]] = [
            ("base alone", ["smol-base"], None),
            ("4 bare-base rows (the floor)", BARE, None),
            ("K=2 fused (concat)", ["smol-base", *LORAS[:1]], None),
            ("K=3 fused (concat)", ["smol-base", *LORAS[:2]], None),
            ("K=4 fused (concat)", ["smol-base", *LORAS], None),
            ("K=4 fused (gather)", ["smol-base", *LORAS], lambda: gather),
            ("K=4 PEFT adapter_names", ["smol-base", *LORAS], lambda: None),
        ]
        seconds = {}
        for label, ids, fused in ways:
            if fused is not None:
                loaded.fused_adapters = fused
            try:
                seconds[label] = cpu_seconds(studio, ids, settings, repeats)
            finally:
                loaded.__dict__.pop("fused_adapters", None)
    one = seconds["base alone"]
    return [
        Row(
            "mixed batch",
            label,
            f"{value:.2f} CPU s",
            f"{value / one:.2f}x the base alone; one thread, {tokens} new tokens, median of {repeats}",
            COMMAND,
        )
        for label, value in seconds.items()
    ]


def main() -> None:
    args = whole_number_options(__doc__, repeats=3, tokens=32)
    for row in run(args.repeats, args.tokens):
        print(f"{row.name:32} {row.value:12} {row.detail}")


if __name__ == "__main__":
    main()
