"""Questions scored together, each prompt run once with its options scored from its KV cache, give each
question's option log-likelihoods as the full-row path (every option its own prompt + option row, one
question a pass), on the tiny model in float32."""

import pytest

from medalpaca_core.engine import Studio
from medalpaca_core.evaluation import BUNDLED_EXAM, load_exam
from medalpaca_core.evaluation import loglik as loglik_module
from medalpaca_core.evaluation.loglik import BATCH_ROWS, loglik_many
from medalpaca_core.evaluation.prompt import PromptStyle
from medalpaca_core.generation.batch_cache import CacheLayoutError
from medalpaca_core.models.manager import ModelManager

QUESTIONS = load_exam(BUNDLED_EXAM).questions[:5]  # different lengths: the rows of a pass are padded


def assert_equal_to_full_rows(studio: Studio, together: list, style: PromptStyle, variants: list[str], choice: str):
    for question, (records, errors) in zip(QUESTIONS, together, strict=True):
        full_rows = loglik_many(studio, [(question, style)], variants, choice, rotate=True, shared_prompt=False)
        [(alone, alone_errors)] = full_rows
        assert not errors and not alone_errors and set(records) == set(variants)
        for variant in variants:
            mine, reference = records[variant], alone[variant]
            assert (mine["parsed"], mine["parsed_norm"]) == (reference["parsed"], reference["parsed_norm"])
            assert mine["rotations"] == reference["rotations"]
            for letter, value in reference["loglik"].items():
                assert mine["loglik"][letter] == pytest.approx(value, abs=1e-4)


@pytest.mark.parametrize("variants", [["tiny", "tiny-lora-0"], ["tiny-lora-0"]], ids=["mixed adapters", "one adapter"])
@pytest.mark.parametrize(("prompt", "choice"), [("paper", "letter"), ("paper", "text"), ("harness", "text")])
def test_shared_prompts_scored_together_equal_full_rows_one_question_a_pass(tiny_registry, prompt, choice, variants):
    studio = Studio(tiny_registry, ModelManager(device="cpu"))
    style = PromptStyle(prompt, "usmle")
    together = loglik_many(studio, [(q, style) for q in QUESTIONS], variants, choice, rotate=True)
    assert len(QUESTIONS) * 4 > BATCH_ROWS, "more prompts than one pass: the batches split"
    if choice == "text":
        tokenizer = studio.acquire(studio.variant(variants[0]))[0].tokenizer
        lengths = {len(tokenizer(text)["input_ids"]) for q in QUESTIONS for text in q.options.values()}
        assert len(lengths) > 2, "options of different lengths: the option pass is padded"
    assert_equal_to_full_rows(studio, together, style, variants, choice)


def test_a_cache_that_cannot_repeat_rows_falls_back_to_full_rows(tiny_registry, monkeypatch):
    def unsupported(*_):
        raise CacheLayoutError("sliding window layers")

    monkeypatch.setattr(loglik_module, "option_logprobs", unsupported)
    studio = Studio(tiny_registry, ModelManager(device="cpu"))
    style = PromptStyle()
    together = loglik_many(studio, [(q, style) for q in QUESTIONS], ["tiny"], "text", rotate=True)
    assert_equal_to_full_rows(studio, together, style, ["tiny"], "text")
