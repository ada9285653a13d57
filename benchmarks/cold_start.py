"""The cold start section: the first load (GGUF -> safetensors cache) and a cached load, each in a new process."""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time

from benchmarks.common import Row
from medalpaca_core.models.default_model import DEFAULT_ALIAS


def _load_child(home: str, queue: multiprocessing.Queue) -> None:
    """Time importing torch, the model code, and loading the default model, in a fresh process.

    The child imported this module, hence ``medalpaca_core``, before it runs this, as the app and the CLI
    do before transformers (``import_cache`` hooks transformers' import); "interpreter" counts that.
    """
    os.environ["MEDALPACA_HOME"] = home
    entered = time.time()
    import torch  # noqa: F401  (what every load needs first)

    torch_at = time.time()
    from transformers.models.llama import modeling_llama  # noqa: F401  (the model code a load imports)

    from medalpaca_core.models.loading import load_pretrained, resolve_base

    code_at = time.time()
    load_pretrained(resolve_base(DEFAULT_ALIAS), "none", "bfloat16", "cpu")
    queue.put((entered, torch_at, code_at, time.time()))


def _timed_load(home: str) -> tuple[float, float, float, float]:
    """Seconds from starting a child to: its code running, torch imported, the model code imported, the model loaded."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_load_child, args=(home, queue))
    started = time.time()
    child.start()
    stamps = queue.get(timeout=900)
    child.join()
    entered, torch_at, code_at, done = (stamp - started for stamp in stamps)
    return entered, torch_at, code_at, done


def cold_start_rows(repeats: int = 3) -> list[Row]:
    """First load from the GGUF (converts it) vs a load from the safetensors cache, each in a new process.

    "From process start" runs from the parent starting the child to the model being ready: the
    interpreter, torch and transformers imports included, as a user who types ``make demo`` waits for them.
    The cached load is the median of ``repeats`` fresh processes (the target is close to what one run varies).
    """
    rows = []
    with tempfile.TemporaryDirectory() as home:
        first = _timed_load(home)
        cached = sorted((_timed_load(home) for _ in range(repeats)), key=lambda stamps: stamps[-1])
        spread = f"; median of {repeats}, {cached[0][-1]:.2f}-{cached[-1][-1]:.2f} s"
        for label, (entered, torch_at, code_at, done), note in (
            ("first load: GGUF -> safetensors cache", first, ""),
            ("cached load", cached[len(cached) // 2], spread),
        ):
            rows.append(
                Row(
                    "cold start",
                    label,
                    f"{done - code_at:.2f} s load",
                    f"{done:.2f} s from process start: {entered:.2f} s interpreter, {torch_at - entered:.2f} s import "
                    f"torch, {code_at - torch_at:.2f} s transformers' model code{note}",
                    "python -m benchmarks.inference",
                )
            )
    return rows
