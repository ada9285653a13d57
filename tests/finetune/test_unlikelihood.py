"""Phase two of an adapter: start from its trained weights, penalise what it repeats in its own greedy answers."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from finetune.__main__ import main
from finetune.card import LOSS_COLUMNS
from finetune.config import ConfigError, DataConfig, FinetuneConfig, LoraSettings, TrainSettings, validate
from finetune.data import IGNORE_INDEX
from finetune.initial import KEPT_CARD, StartError, lineage, read_start, set_aside
from finetune.train import run
from finetune.unlikelihood import OwnAnswers, SequenceUnlikelihood, prompts_of, repeated_ngram_mask
from medalpaca_core.evaluation.repetition import repetition
from medalpaca_core.models.loading import load_pretrained
from medalpaca_core.runtime.paths import ASSETS_DIR

DEMO = ASSETS_DIR / "data" / "medalpaca_studio_demo.json"


def test_only_the_repeats_of_an_ngram_are_marked():
    assert repeated_ngram_mask([1, 2, 3, 4, 5, 6], 2) == [False] * 6
    # "1 2 3" again at 3-5: its second occurrence is marked, never the first
    assert repeated_ngram_mask([1, 2, 3, 1, 2, 3, 9], 3) == [False, False, False, True, True, True, False]
    # a token run: every 2-gram after the first repeats it, overlapping
    assert repeated_ngram_mask([7, 7, 7, 7], 2) == [False, True, True, True]
    assert repeated_ngram_mask([1, 2], 4) == [False, False]


def test_prompts_are_the_tokens_before_the_first_label():
    ids = torch.tensor([[5, 6, 7, 8, 9], [5, 6, 8, 9, 0]])
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 8, 9], [IGNORE_INDEX, IGNORE_INDEX, 8, 9, -100]])
    assert prompts_of({"input_ids": ids, "labels": labels}) == [[5, 6, 7], [5, 6]]


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    model, tokenizer = load_pretrained(str(tiny_dir), "none", "float32", "cpu")
    return model, tokenizer


@pytest.mark.parametrize("seed", [0, 1])  # seeded: 12 seeds passed when it was written
def test_penalty_is_minus_log_one_minus_p_of_each_marked_token_and_teaches_avoiding_them(tiny, seed):
    model, tokenizer = tiny
    torch.manual_seed(seed)
    model = type(model)(model.config)  # a fresh random copy: this test trains it
    penalty = SequenceUnlikelihood(1.0, 2, 8, tokenizer)
    prompt, answer = [11, 12, 13], [40, 41, 40, 41, 40, 41]
    own = OwnAnswers([prompt], [answer], [repeated_ngram_mask(answer, 2)], repeats=1)
    assert sum(own.marked[0]) == 4  # everything after the first "40 41"
    sequence = torch.tensor([prompt + answer])
    with torch.no_grad():
        probabilities = torch.softmax(model(input_ids=sequence).logits[0], dim=-1)
    marked = [(len(prompt) + j - 1, answer[j]) for j in (2, 3, 4, 5)]  # position predicting each marked token
    expected = -sum(torch.log1p(-probabilities[p, t]) for p, t in marked)
    device = torch.device("cpu")
    assert float(penalty.penalty(model, own, device).detach()) == pytest.approx(float(expected), rel=1e-4)

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(80):  # first teach it the loop, so that there is a likely repeat to unlearn
        optimizer.zero_grad()
        model(input_ids=sequence, labels=sequence).loss.backward()
        optimizer.step()
    looping = torch.softmax(model(input_ids=sequence).logits[0].detach(), dim=-1)
    before = [float(looping[p, t]) for p, t in marked]
    assert min(before) > 0.25
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)  # no momentum left from learning the loop
    for _ in range(20):
        optimizer.zero_grad()
        penalty.penalty(model, own, device).backward()
        optimizer.step()
    after = torch.softmax(model(input_ids=sequence).logits[0].detach(), dim=-1)
    assert all(float(after[p, t]) < b / 2 for (p, t), b in zip(marked, before, strict=True))


def test_no_repeat_means_no_penalty_and_no_forward(tiny):
    tokenizer = tiny[1]
    penalty = SequenceUnlikelihood(1.0, 4, 8, tokenizer)
    own = OwnAnswers([[1, 2]], [[3, 4, 5]], [[False] * 3], repeats=0)
    assert float(penalty.penalty(None, own, torch.device("cpu"))) == 0.0  # None: the model is never called


def test_greedy_answers_stop_at_eos_and_leave_the_model_training(tiny):
    model, tokenizer = tiny
    penalty = SequenceUnlikelihood(1.0, 2, 12, tokenizer)
    model.train()
    own = penalty.answer(model, [[11, 12, 13], [14, 15]], torch.device("cpu"))
    assert model.training
    assert len(own.answers) == 2 and all(0 < len(a) <= 12 for a in own.answers)
    assert all(tokenizer.eos_token_id not in a for a in own.answers)
    texts = tokenizer.batch_decode(own.answers, skip_special_tokens=True)
    loops = [repetition(text) is not None for text in texts]
    assert own.repeats == sum(loops)
    for answer, marks, loop in zip(own.answers, own.marked, loops, strict=True):
        assert marks == (repeated_ngram_mask(answer, 2) if loop else [False] * len(answer))


def phase_config(tiny_dir: Path, output: Path, **changes: object) -> FinetuneConfig:
    train = TrainSettings(
        max_steps=4,
        learning_rate=5e-2,
        warmup_steps=0,
        batch_size=8,
        micro_batch_size=4,
        eval_steps=0,
        save_steps=2,
        logging_steps=1,
        precision="fp32",
    )
    config = FinetuneConfig(
        method="lora", base=str(tiny_dir), output=str(output), data=DataConfig(sources=[f"{DEMO}:48"], cutoff=128)
    )
    return replace(config, train=train, **changes)


def test_phase_two_starts_from_the_trained_adapter_and_logs_its_own_repeats(tiny_dir, tmp_path):
    first_config = phase_config(tiny_dir, tmp_path / "adapter")
    first = run(first_config)
    first_card = (tmp_path / "adapter" / "README.md").read_text()
    weighted = replace(first_config.train, unlikelihood_weight=1.0, unlikelihood_ngram=2)
    config = phase_config(tiny_dir, tmp_path / "adapter", init_adapter=str(tmp_path / "adapter"), overwrite=True)
    second = run(replace(config, train=replace(weighted, unlikelihood_new_tokens=16)))
    # the phase's first evaluation is of the trained adapter, not of a fresh LoRA (which would be the base)
    assert second.val_loss_before == pytest.approx(first.val_loss_after, rel=1e-5)
    assert second.val_loss_before < first.val_loss_before
    out = tmp_path / "adapter"
    assert (out / KEPT_CARD).read_text() == first_card
    card = (out / "README.md").read_text()
    assert "| started from |" in card and "| unlikelihood |" in card and "the starting adapter" in card
    assert "own greedy answers to its training questions" in card
    assert not set_aside(out).exists()  # the replaced adapter is deleted once the phase has saved
    header, *rows = (out / "loss_log.csv").read_text().splitlines()
    assert header == ",".join(LOSS_COLUMNS)
    shares = [float(row.split(",")[5]) for row in rows if row.split(",")[5]]
    assert len(shares) == 4 and all(0 <= share <= 1 for share in shares)  # one per logged step


def test_a_later_phase_keeps_the_cards_of_every_phase_before(tmp_path):
    assert lineage(tmp_path) is None
    (tmp_path / "README.md").write_text("# phase two")
    (tmp_path / KEPT_CARD).write_text("# the epoch")
    kept = lineage(tmp_path)
    assert kept.startswith("# phase two") and kept.endswith("# the epoch") and "started from another" in kept


class Interrupt(TrainerCallback):
    """A run killed at its first step."""

    def on_step_end(self, args, state, control, **kwargs):
        raise KeyboardInterrupt


def test_a_phase_killed_half_way_loses_not_the_adapter_it_replaces(tiny_dir, tmp_path):
    out = tmp_path / "adapter"
    run(phase_config(tiny_dir, out))
    weights = (out / "adapter_model.safetensors").read_bytes()
    phase = phase_config(tiny_dir, out, init_adapter=str(out), overwrite=True)
    with pytest.raises(KeyboardInterrupt):
        run(phase, callbacks=[Interrupt()])
    assert (set_aside(out) / "adapter_model.safetensors").read_bytes() == weights
    with pytest.raises(StartError, match=f"left the one it replaced in {set_aside(out)}"):
        read_start(phase)
    run(replace(phase, init_adapter=str(set_aside(out))))  # starts from it, saves, then drops it
    assert (out / "adapter_model.safetensors").is_file() and not set_aside(out).exists()


def test_an_adapter_of_another_shape_or_a_broken_one_is_refused(tiny_dir, tmp_path):
    run(phase_config(tiny_dir, tmp_path / "r8"))  # LoRA r=8 on q_proj, v_proj (the defaults)
    other = replace(
        phase_config(tiny_dir, tmp_path / "next", init_adapter=str(tmp_path / "r8")),
        lora=LoraSettings(r=16, target_modules=["q_proj", "k_proj", "v_proj"]),
    )
    with pytest.raises(StartError, match=r"r: the adapter has 8, this run 16.*target_modules"):
        read_start(other)
    with pytest.raises(StartError, match="holds no trained adapter"):
        read_start(replace(other, init_adapter=str(tmp_path / "nowhere")))
    weights = tmp_path / "r8" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    with pytest.raises(StartError, match="cannot be read"):
        read_start(replace(other, lora=LoraSettings()))
    assert main(["--method", "lora", "--base", str(tiny_dir), "--data", str(DEMO), "--init-adapter", "nowhere"]) == 2


def test_bad_phase_settings_are_named(tiny_dir, tmp_path):
    config = phase_config(tiny_dir, tmp_path / "x")
    with pytest.raises(ConfigError, match="train_on_inputs"):
        validate(
            replace(
                config,
                data=replace(config.data, train_on_inputs=True),
                train=replace(config.train, unlikelihood_weight=1.0),
            )
        )
    with pytest.raises(ConfigError, match="init_adapter"):
        validate(replace(config, method="full", init_adapter="somewhere"))
    with pytest.raises(ConfigError, match="unlikelihood_ngram"):
        validate(replace(config, train=replace(config.train, unlikelihood_ngram=1)))
