"""Inference benchmarks of the embedded default model: decode speed, side-by-side cost, memory, cold start.

Every number goes through ``medalpaca_core`` exactly as the app uses it (registry, ModelManager,
Studio.stream), greedy, with a ~200-token prompt and a fixed 128 new tokens (``min_new_tokens``).
Memory and cold-start rows run in fresh child processes so one row's peak does not leak into the next.

    .venv/bin/python -m benchmarks.inference [--repeats 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from medalpaca_core.engine import Studio
from medalpaca_core.generation.answers import Status
from medalpaca_core.generation.settings import GenerationSettings
from medalpaca_core.models.default_model import DEFAULT_ALIAS
from medalpaca_core.models.manager import ModelManager
from medalpaca_core.models.memory import peak_rss_bytes
from medalpaca_core.models.registry import Registry, Variant

NEW_TOKENS = 128
SETTINGS = GenerationSettings(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS)
QUESTION = "What are the symptoms of diabetes, and how is it diagnosed?"
CONTEXT = (
    "Diabetes is a chronic disease that occurs either when the pancreas does not produce enough insulin or when "
    "the body cannot effectively use the insulin it produces. Insulin is a hormone that regulates blood glucose. "
    "Hyperglycaemia, also called raised blood glucose or raised blood sugar, is a common effect of uncontrolled "
    "diabetes and over time leads to serious damage to many of the body's systems, especially the nerves and "
    "blood vessels. Type 1 diabetes is characterized by deficient insulin production and requires daily "
    "administration of insulin. Type 2 diabetes affects how the body uses sugar for energy; it stops the body "
    "from using insulin properly, which can lead to high levels of blood sugar if not treated."
)


@dataclass(frozen=True)
class Row:
    """One benchmark result line."""

    section: str
    name: str
    value: str
    detail: str
    command: str

    def table_line(self) -> str:
        """The row as BENCHMARKS.md's results table has it."""
        return f"| {self.section} | {self.name} | {self.value} | {self.detail} | `{self.command}` |"


def whole_number_options(doc: str | None, **defaults: int) -> argparse.Namespace:
    """A benchmark script's command line: its docstring as help, one whole-number option per default
    (``max_new_tokens=16`` is ``--max-new-tokens``, 16 unless given)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in defaults.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=default)
    return parser.parse_args()


def bench_registry(adapters: list[Path]) -> Registry:
    """The shipped registry plus an fp32 variant and ``adapters`` as LoRA variants on the bf16 base."""
    registry = Registry.load(finetuned=Path(tempfile.mkdtemp()))
    registry.add(Variant(id="smol-fp32", label="fp32", base=DEFAULT_ALIAS, dtype="float32"))
    for n, folder in enumerate(adapters):
        registry.add(Variant(id=f"bench-lora-{n}", label=f"LoRA {n}", base=DEFAULT_ALIAS, adapter=str(folder)))
    return registry


def make_adapters(count: int, root: Path) -> list[Path]:
    """LoRA adapters of the paper's shape (r=8, alpha 16, q_proj/v_proj) with random weights."""
    import torch
    from peft import LoraConfig, get_peft_model

    from medalpaca_core.models.loading import load_pretrained, resolve_base

    model, _ = load_pretrained(resolve_base(DEFAULT_ALIAS), "none", "bfloat16", "cpu")
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    folders = []
    for n in range(count):
        torch.manual_seed(n)
        adapted = get_peft_model(model, config)
        adapted.save_pretrained(root / f"lora-{n}")
        model = adapted.unload()  # the base without LoRA layers, for the next adapter
        folders.append(root / f"lora-{n}")
    return folders


def timed_answer(studio: Studio, variant_ids: list[str]) -> tuple[float, dict]:
    """Wall time to the last token of a (batched) answer, and the final answers."""
    started = time.perf_counter()
    answers = studio.ask(variant_ids, QUESTION, CONTEXT, settings=SETTINGS)
    elapsed = time.perf_counter() - started
    failed = {v: a.error for v, a in answers.items() if a.status != Status.DONE}
    if failed:
        raise RuntimeError(f"benchmark answers failed: {failed}")
    return elapsed, answers


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
    return rows + mixed_batch_rows(studio, ids, repeats, one)


def mixed_batch_rows(studio: Studio, ids: list[str], repeats: int, one: float) -> list[Row]:
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
    import psutil

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


SECTIONS = ("decode", "side-by-side", "memory", "cold start", "reference")


def run(
    repeats: int, sections: tuple[str, ...] = SECTIONS, decode_variants: tuple[str, ...] = DECODE_VARIANTS
) -> list[Row]:
    """The rows of ``sections`` (all by default), llama.cpp's anchor first so every ratio is from this run."""
    anchor = llama_cpp_anchor(repeats)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as scratch:
        adapters = make_adapters(4, Path(scratch))
        studio = Studio(bench_registry(adapters), ModelManager(device="cpu"))
        if "decode" in sections:
            rows += decode_rows(studio, repeats, anchor, decode_variants)
        if "side-by-side" in sections:
            rows += compare_rows(studio, repeats, anchor)
        del studio
        if "memory" in sections:
            rows += memory_rows(adapters)
    if "cold start" in sections:
        rows += cold_start_rows(repeats)
    return rows + (llama_cpp_rows(anchor) if "reference" in sections else [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="runs per timing; the median is reported")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args()
    rows = run(args.repeats)
    for row in rows:
        print(f"{row.section:13} {row.name:45} {row.value:22} {row.detail}")
    if args.json:
        args.json.write_text(json.dumps([row.__dict__ for row in rows], indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
