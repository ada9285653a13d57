"""Streaming answers side by side: batching, equality with single runs, cancellation, bad input."""

import queue
import threading
from itertools import pairwise

import pytest

from medalpaca_core.engine import Studio, latest
from medalpaca_core.generation import scheduler
from medalpaca_core.generation.multilora import lora_layers
from medalpaca_core.generation.settings import GenerationSettings, SettingsError
from medalpaca_core.models.manager import ModelManager
from medalpaca_core.models.registry import UnavailableVariantError, UnknownVariantError, Variant
from medalpaca_core.models.selection import MIN_TOKENS_FOR_SPEED
from medalpaca_core.text.prompts import MAX_QUESTION_CHARS, PromptError, PromptParts, encode, render
from tests.tiny import corrupt_adapter

GREEDY = GenerationSettings(max_new_tokens=12)
QUESTION = "What are the symptoms of diabetes?"


@pytest.fixture
def studio(tiny_registry):
    return Studio(tiny_registry, ModelManager(device="cpu"))


def final(studio, variants, question=QUESTION, **kwargs):
    return studio.ask(variants, question, settings=kwargs.pop("settings", GREEDY), **kwargs)


def test_batched_greedy_equals_single(studio):
    ids = ["tiny", "tiny-lora-0", "tiny-lora-1", "tiny-qa"]
    together = final(studio, ids)
    for ident in ids:
        alone = final(studio, [ident])[ident]
        assert together[ident].status == "done" and alone.text == together[ident].text, ident
    texts = [together[ident].text for ident in ids[:3]]
    assert len(set(texts)) == 3, "each adapter must change the answer"


def test_one_batch_serves_base_and_adapters(studio, monkeypatch):
    loaded, _ = studio.manager.acquire(studio.registry.get("tiny-lora-0"))
    studio.manager.acquire(studio.registry.get("tiny-lora-1"))
    calls = []
    original = type(loaded.model).forward

    def counting(self, *args, **kwargs):
        fused_hooks = sum(bool(layer._forward_hooks) for _, layer in lora_layers(self))
        calls.append((kwargs["input_ids"].shape[0], kwargs.get("adapter_names"), fused_hooks))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(loaded.model), "forward", counting)
    final(studio, ["tiny", "tiny-lora-0", "tiny-lora-1"])
    assert calls[0][:2] == (3, None) and calls[0][2] > 0, "one prefill of the three rows, on the fused path"
    assert len(calls) <= GREEDY.max_new_tokens, "then one decoding step for all of them per token"
    calls.clear()
    final(studio, ["tiny-lora-1"])
    final(studio, ["tiny"])
    assert {call for call in calls} == {(1, None, 0)}, "a batch of one adapter takes PEFT's plain (faster) path"


def greedy_tokens(studio, variant_id, count):
    """The first ``count`` greedy tokens of ``variant_id`` (its adapter alone), straight from PEFT."""
    import torch

    loaded, adapter = studio.manager.acquire(studio.registry.get(variant_id))
    ids = encode("medalpaca", render("medalpaca", PromptParts(QUESTION)), loaded.tokenizer)
    with loaded.lock, loaded.rows_adapters([adapter]) as kwargs, torch.inference_mode():
        out = loaded.model.generate(input_ids=torch.tensor([ids]), max_new_tokens=count, do_sample=False, **kwargs)
    return out[0, len(ids) :].tolist()


def test_finished_rows_leave_the_batch_and_the_others_answer_as_alone(studio, monkeypatch):
    ids = ["tiny", "tiny-lora-0", "tiny-lora-1"]
    tokens = {ident: greedy_tokens(studio, ident, 12) for ident in ids}
    others = set(tokens["tiny"] + tokens["tiny-lora-1"])
    # an end-of-answer token that tiny-lora-0 says early and the other two never do
    stop = next(token for token in tokens["tiny-lora-0"][2:] if token not in others)
    monkeypatch.setattr(scheduler, "eos_token_ids", lambda model, tokenizer: {stop})
    loaded, finished_adapter = studio.manager.acquire(studio.registry.get("tiny-lora-0"))
    calls = []
    rows_adapters = loaded.rows_adapters

    def recording(names):
        calls.append(list(names))
        return rows_adapters(names)

    monkeypatch.setattr(loaded, "rows_adapters", recording)
    together = final(studio, ids)
    assert together["tiny-lora-0"].stats.finish_reason == "eos" and together["tiny-lora-0"].stats.new_tokens < 12
    sizes = [len(names) for names in calls]
    assert sizes == sorted(sizes, reverse=True) and set(sizes) == {3, 2}, "the finished row leaves, the others go on"
    assert all(finished_adapter not in names for names in calls if len(names) == 2)
    for ident in ids:
        alone = final(studio, [ident])[ident]
        assert alone.text == together[ident].text and alone.stats.new_tokens == together[ident].stats.new_tokens


def test_stream_grows_token_by_token_with_stats(studio):
    snapshots = list(studio.stream(["tiny"], QUESTION, settings=GREEDY))
    texts = [s["tiny"].text for s in snapshots if s["tiny"].status == "generating"]
    assert len(texts) >= 3 and all(a == b[: len(a)] or not a for a, b in pairwise(texts))
    answer = snapshots[-1]["tiny"]
    stats = answer.stats
    assert answer.status == "done" and stats.new_tokens > 0 and stats.ttft_s is not None
    assert stats.wall_s >= stats.ttft_s and stats.memory_bytes > 0 and stats.finish_reason
    assert "tok/s" in stats.summary()


def test_the_studio_keeps_the_speed_its_answers_measured(studio):
    """Every stream's finished answers go into the studio's speed log, which its pickers read."""
    assert studio.speeds.get("tiny") is None
    answer = final(studio, ["tiny"], settings=GenerationSettings(max_new_tokens=MIN_TOKENS_FOR_SPEED * 2))["tiny"]
    assert answer.stats.new_tokens >= MIN_TOKENS_FOR_SPEED, "the tiny model's greedy answer is long enough to time"
    assert studio.speeds.get("tiny") == pytest.approx(answer.stats.tokens_per_s)


def test_sampling_settings_take_effect(studio):
    hot = GenerationSettings(max_new_tokens=12, temperature=1.5, top_p=1.0, top_k=0)
    texts = {
        final(studio, ["tiny"], settings=GenerationSettings(**{**hot.__dict__, "seed": s}))["tiny"].text
        for s in range(4)
    }
    assert len(texts) > 1
    seeded = GenerationSettings(**{**hot.__dict__, "seed": 7})
    assert (
        final(studio, ["tiny"], settings=seeded)["tiny"].text == final(studio, ["tiny"], settings=seeded)["tiny"].text
    )


def test_cancel_stops_generation(studio, held_answers):
    cancel = threading.Event()
    last = None
    for snapshot in studio.stream(["tiny", "tiny-lora-0"], QUESTION, settings=GREEDY, cancel=cancel):
        last = snapshot
        if snapshot["tiny"].status == "generating":
            cancel.set()
    assert [a.stats.finish_reason for a in last.values()] == ["cancelled", "cancelled"]
    assert all(a.stats.new_tokens < GREEDY.max_new_tokens for a in last.values())


def test_closing_the_stream_stops_the_worker(studio, held_answers):
    stream = studio.stream(["tiny"], QUESTION, settings=GREEDY)
    for snapshot in stream:
        if snapshot["tiny"].status == "generating":
            break
    stream.close()  # what a disconnecting client does
    assert held_answers.run_ended.wait(60), "the row goes on"  # held until cancelled: it cannot end by itself
    assert held_answers.ended[-1]["tiny"].stats.finish_reason == "cancelled"


def test_unknown_variant_is_rejected_up_front(studio):
    with pytest.raises(UnknownVariantError, match="Valid ids: tiny"):
        final(studio, ["tiny", "nope"])


@pytest.mark.parametrize("question", ["", "  "])
def test_empty_question_is_rejected(studio, question):
    with pytest.raises(PromptError, match="empty"):
        final(studio, ["tiny"], question)


def test_context_that_is_not_text_is_rejected(studio):
    with pytest.raises(PromptError, match="context must be text, not NoneType"):
        studio.ask(["tiny"], "why?", None)


def test_no_variant_is_rejected(studio):
    with pytest.raises(PromptError, match="No variant"):
        final(studio, [])


def test_question_over_the_limit_is_rejected(studio):
    with pytest.raises(PromptError, match="limit"):
        final(studio, ["tiny"], "why " * MAX_QUESTION_CHARS)


def test_bad_settings_are_rejected(studio):
    with pytest.raises(SettingsError, match="top_p"):
        final(studio, ["tiny"], settings=GenerationSettings(top_p=0))


def test_long_context_is_truncated_with_notice(studio):
    context = "The pancreas makes insulin. " * 200  # far over the tiny model's 512-token window
    answer = final(studio, ["tiny"], context=context)["tiny"]
    assert answer.status == "done" and answer.stats.truncated
    assert answer.stats.prompt_tokens <= 512 - GREEDY.max_new_tokens
    assert "truncated" in answer.stats.summary()


def test_question_longer_than_the_window_is_an_error_answer(studio):
    answer = final(studio, ["tiny"], "why " * 900)["tiny"]
    assert answer.status == "error" and "context window" in answer.error


def test_broken_variant_fails_alone(studio, tiny_dir, tiny_adapters, tmp_path):
    broken = corrupt_adapter(tmp_path / "broken", tiny_adapters[0])
    studio.registry.add(Variant(id="broken", label="b", base=str(tiny_dir), adapter=str(broken), dtype="float32"))
    answers = final(studio, ["tiny", "broken", "tiny-lora-0"])
    assert answers["tiny"].status == answers["tiny-lora-0"].status == "done"
    assert answers["tiny"].stats.new_tokens > 0 and answers["tiny-lora-0"].stats.new_tokens > 0
    assert answers["broken"].status == "error" and "corrupt" in answers["broken"].error


def test_a_variant_this_machine_cannot_run_is_refused_before_anything_runs(studio, tiny_dir, tmp_path):
    studio.registry.add(Variant(id="offline-hub", label="h", base="medalpaca/medalpaca-7b"))
    studio.registry.add(Variant(id="gone", label="g", base=str(tiny_dir), adapter=str(tmp_path / "missing")))
    assert list(studio.unavailable()) == ["offline-hub", "gone"]
    assert "offline-hub" not in [ident for _, ident in studio.choices()]
    refused = r"nothing was run: offline-hub \(medalpaca/medalpaca-7b is not downloaded.*\); gone \(adapter folder"
    with pytest.raises(UnavailableVariantError, match=refused):
        studio.stream(["tiny", "offline-hub", "gone"], QUESTION, settings=GREEDY)
    assert studio.manager.loaded() == []


def test_quantized_groups_run_beside_the_full_one(studio):
    answers = final(studio, ["tiny", "tiny-int8", "tiny-nf4"])
    assert all(answers[v].status == "done" for v in answers)
    assert answers["tiny-int8"].stats.quantization == "int8" and answers["tiny-nf4"].stats.quantization == "nf4"


def test_chat_turn_uses_history(studio):
    answers = list(studio.chat("tiny", [("Hello", "Hi, how can I help?")], "What is asthma?", GREEDY))
    assert answers[-1].status == "done" and answers[-1].stats.prompt_tokens > 0


def test_incremental_decoding_equals_full_decode(default_model_dir):
    from transformers import AutoTokenizer

    from medalpaca_core.generation.decoding import IncrementalDecoder

    tokenizer = AutoTokenizer.from_pretrained(default_model_dir)
    text = "Naïve café patients — 糖尿病 (diabetes) 🩺: polyuria,  polydipsia\n\n* weight loss<|im_end|> done"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    decoder = IncrementalDecoder(tokenizer)
    for token in ids:
        decoder.push(token)
    assert decoder.text == tokenizer.decode(ids, skip_special_tokens=True)


def test_a_slow_consumer_gets_every_update_queued_meanwhile_in_one_pull():
    updates: queue.Queue[int | None] = queue.Queue()
    for update in [1, 2, None, 3]:
        updates.put(update)
    assert list(latest(updates)) == [1, 2, None, 3], "all of them, in order, without waiting for a fifth"
    updates.put(4)
    assert list(latest(updates)) == [4]
