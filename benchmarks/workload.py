"""What the studio sections measure: a ~200-token prompt, exactly 128 new tokens, greedy, through ``Studio`` as the
app uses it, on the shipped registry plus an fp32 variant and random LoRA adapters of the paper's shape.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from medalpaca_core.engine import Studio
from medalpaca_core.generation.answers import Status
from medalpaca_core.generation.settings import GenerationSettings
from medalpaca_core.models.default_model import DEFAULT_ALIAS
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
