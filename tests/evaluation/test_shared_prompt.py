"""Option tokens scored after a prompt's cached pass equal the same tokens scored in full rows (prompt +
option), also where the tokenizer merges the prompt's last token with the option's first."""

import pytest

from medalpaca_core.engine import Studio
from medalpaca_core.evaluation.forward import continuation_ids, forward_logprobs, target_logprobs
from medalpaca_core.evaluation.shared_prompt import option_logprobs
from medalpaca_core.models.adapters import BASE_ADAPTER
from medalpaca_core.models.manager import ModelManager

PROMPTS = ["The capital of France is ", "Q: Which organ makes insulin?\nA:"]  # the first ends in a space
OPTIONS = [["Paris", "Lyon", "a city on the Seine"], [" the pancreas", " liver", " B", " the adrenal cortex"]]


def test_option_tokens_after_a_shared_prompt_equal_full_rows(tiny_registry):
    studio = Studio(tiny_registry, ModelManager(device="cpu"))
    loaded, adapter = studio.acquire(studio.variant("tiny-lora-0"))
    tokenizer = loaded.tokenizer
    prompts = [tokenizer(text)["input_ids"] for text in PROMPTS]
    merged = tokenizer(PROMPTS[0] + OPTIONS[0][0])["input_ids"]
    assert merged[: len(prompts[0])] != prompts[0], "the tokenizer merges the space into the option's first token"
    options = [
        [continuation_ids(tokenizer, "medalpaca", text, ids, option) for option in texts]
        for text, ids, texts in zip(PROMPTS, prompts, OPTIONS, strict=True)
    ]
    adapters = [adapter, BASE_ADAPTER]  # a mixed batch: the fused multi-LoRA path in both passes
    shared = option_logprobs(loaded, list(zip(prompts, adapters, strict=True)), options)
    for ids, adapter, continuations, scored in zip(prompts, adapters, options, shared, strict=True):
        for option, values in zip(continuations, scored, strict=True):
            full = forward_logprobs(loaded, [(ids + option, adapter)], keep=len(option) + 1)[0]
            assert values == pytest.approx(target_logprobs(full, ids + option, len(option)), abs=1e-4)
