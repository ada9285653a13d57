"""The reference section: llama.cpp's single stream on the GGUF the default model is converted from (optional),
the anchor of every 'x llama.cpp' ratio of one run.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from dataclasses import dataclass

from benchmarks.common import Row
from benchmarks.workload import CONTEXT, NEW_TOKENS, QUESTION

LLAMA_CPP_COMMAND = "make bench-llamacpp && make bench"


@dataclass(frozen=True)
class Anchor:
    """llama.cpp's single stream on the shipped GGUF: what a local user would run instead."""

    tokens_per_s: float
    ttft_s: float

    def ratio(self, tokens_per_s: float) -> str:
        return f"{tokens_per_s / self.tokens_per_s:.2f}x llama.cpp ({self.tokens_per_s:.1f} tok/s in this run)"


def _llama_cpp_child(repeats: int, queue: multiprocessing.Queue) -> None:
    """Greedy decode of the benchmark prompt through llama.cpp, ``repeats`` times after one warm-up."""
    from llama_cpp import Llama

    from medalpaca_core.generation.cpu_share import available_cores
    from medalpaca_core.models.default_model import gguf_path
    from medalpaca_core.text.prompts import PromptParts, render

    llm = Llama(model_path=str(gguf_path()), n_ctx=1024, n_threads=available_cores(), verbose=False)
    prompt = render("medalpaca", PromptParts(QUESTION, CONTEXT))
    no_end = {llm.token_eos(): -1e9}  # exactly NEW_TOKENS, as ``min_new_tokens`` does for the torch rows
    speeds, ttfts = [], []
    for _ in range(repeats + 1):
        llm.reset()  # forget the last run's tokens: llama-cpp-python would reuse the prompt's cache (no prefill)
        started = time.perf_counter()
        first, count = None, 0
        for _ in llm(prompt, max_tokens=NEW_TOKENS, temperature=0.0, logit_bias=no_end, stream=True):
            first, count = first or time.perf_counter(), count + 1
        end = time.perf_counter()
        speeds.append((count - 1) / (end - first))
        ttfts.append(first - started)
    queue.put(Anchor(statistics.median(speeds[1:]), statistics.median(ttfts[1:])))


def llama_cpp_anchor(repeats: int) -> Anchor | None:
    """llama.cpp's speed in a fresh process (its threads and torch's never share one), or None if not installed."""
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        return None
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_llama_cpp_child, args=(repeats, queue))
    child.start()
    anchor = queue.get(timeout=900)
    child.join()
    return anchor


def llama_cpp_rows(anchor: Anchor | None) -> list[Row]:
    """The reference row: llama.cpp on the GGUF the default model is converted from (optional)."""
    if anchor is None:
        return [
            Row(
                "reference",
                "llama.cpp (Q4_1 GGUF)",
                "skipped",
                "llama-cpp-python is not installed (optional; ratios to it left out)",
                LLAMA_CPP_COMMAND,
            )
        ]
    return [
        Row(
            "reference",
            "llama.cpp (Q4_1 GGUF, llama-cpp-python)",
            f"{anchor.tokens_per_s:.1f} tok/s",
            f"first token {anchor.ttft_s:.2f} s; the same prompt and 128 new tokens; the anchor of every "
            "'x llama.cpp' ratio in this run",
            LLAMA_CPP_COMMAND,
        )
    ]
