"""Fused multi-LoRA batches: the same logits and greedy answers as PEFT's own paths, in float32."""

from pathlib import Path

import pytest

from medalpaca_core.generation.multilora import BASE_ROW, STRATEGIES, FusedLoRA, Unsupported
from tests.tiny import build_tiny_lora

PROMPTS = ["What are the symptoms of diabetes?", "Define anemia.", "How is asthma treated?", "Fever causes?"]


@pytest.fixture(scope="module")
def odd_adapter(tmp_path_factory: pytest.TempPathFactory, tiny_dir: Path) -> Path:
    """Another rank (2) and other target modules: shares v_proj with the others, adds k_proj and down_proj."""
    folder = tmp_path_factory.mktemp("odd") / "odd-lora"
    return build_tiny_lora(tiny_dir, folder, seed=7, rank=2, targets=("k_proj", "v_proj", "down_proj"))


@pytest.fixture(scope="module")
def peft_model(tiny_dir, tiny_adapters, odd_adapter):
    """The tiny base in float32 with three adapters loaded by PEFT: a0, a1 (rank 4) and odd (rank 2)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(tiny_adapters[0]), adapter_name="a0", is_trainable=False)
    model.load_adapter(str(tiny_adapters[1]), adapter_name="a1", is_trainable=False)
    model.load_adapter(str(odd_adapter), adapter_name="odd", is_trainable=False)
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    tokenizer.padding_side = "left"
    return model.eval(), tokenizer


def batch(tokenizer, size):
    return tokenizer(PROMPTS[:size], return_tensors="pt", padding=True)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize(
    "names",
    [[BASE_ROW, "a0", "a1", "odd"], ["odd", "a0"], ["a1", BASE_ROW, "a1", "a0"]],
    ids=["base+3", "odd-rank", "repeated"],
)
def test_fused_logits_equal_peft_adapter_names(peft_model, strategy, names):
    import torch

    model, tokenizer = peft_model
    inputs = batch(tokenizer, len(names))
    with torch.inference_mode():
        expected = model(**inputs, adapter_names=names).logits
        with FusedLoRA(model, strategy).rows(names):
            fused = model(**inputs).logits
        plain = model(**inputs, adapter_names=[BASE_ROW] * len(names)).logits
    assert (fused - expected).abs().max().item() < 1e-5
    assert (plain - expected).abs().max().item() > 1e-2, "the adapters must change the logits"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_fused_greedy_equals_peft_and_each_adapter_alone(peft_model, strategy):
    import torch

    model, tokenizer = peft_model
    names = [BASE_ROW, "a0", "a1", "odd"]
    inputs = tokenizer([PROMPTS[0]] * len(names), return_tensors="pt")
    settings = {"max_new_tokens": 16, "do_sample": False, "pad_token_id": tokenizer.pad_token_id}
    with torch.inference_mode():
        with FusedLoRA(model, strategy).rows(names):
            fused = model.generate(**inputs, **settings)
        peft = model.generate(**inputs, adapter_names=names, **settings)
        one = {key: value[:1] for key, value in inputs.items()}
        for row, name in enumerate(names):
            if name == BASE_ROW:
                with model.disable_adapter():
                    alone = model.generate(**one, **settings)
            else:
                model.set_adapter(name)
                alone = model.generate(**one, **settings)
            assert fused[row].tolist() == alone[0].tolist(), name
    assert fused.tolist() == peft.tolist()
    assert len({tuple(row) for row in fused.tolist()}) == len(names), "each adapter must change the answer"


def test_hooks_leave_no_trace(peft_model):
    import torch

    model, tokenizer = peft_model
    inputs = batch(tokenizer, 2)
    with torch.inference_mode():
        before = model(**inputs, adapter_names=["a0", "a1"]).logits
        with FusedLoRA(model).rows(["a0", "a1"]):
            pass
        after = model(**inputs, adapter_names=["a0", "a1"]).logits
    assert torch.equal(before, after)
    assert all(not layer._forward_hooks for layer in FusedLoRA(model).stacks)


def test_unknown_adapter_is_refused(peft_model):
    with pytest.raises(ValueError, match="unknown adapters"), FusedLoRA(peft_model[0]).rows(["a0", "nope"]):
        pass


def test_stacks_are_small_and_follow_the_adapters(tiny_dir, tiny_adapters, odd_adapter):
    """The manager's base builds stacks on the first mixed batch and rebuilds them once an adapter joins."""
    from medalpaca_core.models.manager import ModelManager
    from medalpaca_core.models.registry import Variant

    manager = ModelManager(device="cpu")
    variants = [
        Variant(id=f"v{n}", label=str(n), base=str(tiny_dir), adapter=str(folder), dtype="float32")
        for n, folder in enumerate([*tiny_adapters, odd_adapter])
    ]
    loaded, first = manager.acquire(variants[0])
    _, second = manager.acquire(variants[1])
    with loaded.rows_adapters([first, second]) as kwargs:
        assert kwargs == {}, "a mixed batch takes the fused path"
    built = loaded.fused
    assert built.adapters == sorted([first, second])
    assert built.nbytes < 0.1 * loaded.model.get_memory_footprint()
    _, third = manager.acquire(variants[2])
    with loaded.rows_adapters([third, first]):
        pass
    assert loaded.fused is not built and third in loaded.fused.adapters
    assert loaded.footprint <= 1.1 * loaded.model.get_base_model().get_memory_footprint()
    grown = loaded.fused
    loaded.model.delete_adapter(third)  # an adapter leaves: the next mixed batch stacks without it
    with loaded.rows_adapters([first, second]):
        pass
    assert loaded.fused is not grown and loaded.fused.adapters == sorted([first, second])
    with pytest.raises(ValueError, match="unknown adapters"), loaded.fused.rows([third, first]):
        pass


def test_dora_adapter_falls_back_to_peft(tiny_dir, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj"], use_dora=True), adapter_name="d")
    with pytest.raises(Unsupported, match="DoRA"):
        FusedLoRA(model)


@pytest.mark.slow
def test_fused_greedy_on_the_default_model(default_model_dir):
    """The real SmolLM2 in float32 with two random adapters: fused answers are PEFT's and each variant's
    single stream, token for token."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(default_model_dir, dtype=torch.float32)
    torch.manual_seed(0)
    model = get_peft_model(
        base, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False), "x1"
    )
    second = LoraConfig(r=4, lora_alpha=8, target_modules=["o_proj", "up_proj"], init_lora_weights=False)
    model.add_adapter("x2", second)
    for name, param in model.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0, 0.2)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(default_model_dir)
    inputs = tokenizer([PROMPTS[0]] * 3, return_tensors="pt")
    names = [BASE_ROW, "x1", "x2"]
    settings = {"max_new_tokens": 16, "do_sample": False, "pad_token_id": tokenizer.eos_token_id}
    with torch.inference_mode():
        expected_logits = model(**inputs, adapter_names=names).logits
        with FusedLoRA(model).rows(names):
            logits = model(**inputs).logits
            fused = model.generate(**inputs, **settings)
        peft = model.generate(**inputs, adapter_names=names, **settings)
        one = {key: value[:1] for key, value in inputs.items()}
        with model.disable_adapter():
            alone = [model.generate(**one, **settings)[0].tolist()]
        for name in names[1:]:
            model.set_adapter(name)
            alone.append(model.generate(**one, **settings)[0].tolist())
    # float32 rounding grows with the logits' size (here tens): within 1e-5 of their largest value
    assert (logits - expected_logits).abs().max().item() <= 1e-5 * expected_logits.abs().max().item()
    assert fused.tolist() == peft.tolist()
    for row, single in zip(fused.tolist(), alone, strict=True):  # a row that ended is padded while others go on
        assert row[: len(single)] == single, "each row answers as its variant does alone"
        assert set(row[len(single) :]) <= {tokenizer.eos_token_id}
    assert len({tuple(row) for row in fused.tolist()}) >= 2, "the adapters must change the answers"
