"""The memory section: resident memory with K adapter variants, one shared base against K copies, each in a
fresh process.
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass
from pathlib import Path

import psutil

from benchmarks.common import Row
from benchmarks.workload import CONTEXT, QUESTION, bench_registry
from medalpaca_core.engine import Studio
from medalpaca_core.generation.settings import GenerationSettings
from medalpaca_core.models.manager import ModelManager
from medalpaca_core.models.memory import peak_rss_bytes


@dataclass(frozen=True)
class Memory:
    """Resident memory of one child process, in bytes."""

    loaded: int  # every model and adapter loaded
    answered: int  # after answering once, models still loaded
    peak: int  # the highest it went, generation buffers included


def _memory_child(mode: str, k: int, adapters: list[str], queue: multiprocessing.Queue) -> None:
    """Load K adapter variants (on one shared base, or each on its own copy), answer once, report memory.

    Both modes go through ``Studio`` the way the app does; "separate" gives every variant its own
    ``ModelManager``, so each holds its own copy of the base, as K separately loaded models would.
    """

    registry = bench_registry([Path(a) for a in adapters[:k]])
    ids = [f"bench-lora-{n}" for n in range(k)]
    if mode == "shared":
        studios = [Studio(registry, ModelManager(device="cpu"))] * k
    else:
        studios = [Studio(registry, ModelManager(device="cpu")) for _ in range(k)]
    for studio, variant_id in zip(studios, ids, strict=True):
        studio.acquire(registry.get(variant_id))
    loaded = psutil.Process().memory_info().rss
    if mode == "shared":
        studios[0].ask(ids, QUESTION, CONTEXT, GenerationSettings(max_new_tokens=8))
    else:
        for studio, variant_id in zip(studios, ids, strict=True):
            studio.ask([variant_id], QUESTION, CONTEXT, GenerationSettings(max_new_tokens=8))
    queue.put(Memory(loaded, psutil.Process().memory_info().rss, peak_rss_bytes()))


def measure_memory(mode: str, k: int, adapters: list[Path]) -> Memory:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_memory_child, args=(mode, k, [str(a) for a in adapters], queue))
    child.start()
    value = queue.get(timeout=600)
    child.join()
    return value


def memory_rows(adapters: list[Path]) -> list[Row]:
    """Resident memory with K adapter variants: one shared base vs K separate copies, each in a fresh process."""
    one = measure_memory("shared", 1, adapters)
    rows = [
        Row(
            "memory",
            "1 adapter variant (baseline)",
            f"{one.answered / 2**20:,.0f} MiB resident",
            f"{one.loaded / 2**20:,.0f} MiB once loaded; peak {one.peak / 2**20:,.0f} MiB while answering "
            "(process total: Python, torch and the model)",
            "python -m benchmarks.inference",
        )
    ]
    for k in (2, 4):
        shared, separate = measure_memory("shared", k, adapters), measure_memory("separate", k, adapters)
        rows.append(
            Row(
                "memory",
                f"{k} adapter variants on one shared base",
                f"{shared.answered / 2**20:,.0f} MiB resident",
                f"{shared.answered / one.answered:.2f}x of one; {shared.loaded / one.loaded:.2f}x once loaded; "
                f"peak {shared.peak / 2**20:,.0f} MiB answering all {k} in one batch; "
                f"{k} separate copies {separate.answered / 2**20:,.0f} MiB ({separate.answered / one.answered:.2f}x)",
                "python -m benchmarks.inference",
            )
        )
    return rows
