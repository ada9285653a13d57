"""The EOS probe: the probability of the end of an answer right after gold answers, logged with every
validation loss of a run (the loss log's ``val_eos_prob``), so a run that forgets how to stop shows it."""

from __future__ import annotations

import csv
from dataclasses import replace

import torch
from transformers import AutoModelForCausalLM, Trainer

from finetune.data import Collator, prepare
from finetune.eos_probe import EosProbe
from finetune.train import EVAL_BATCH, evaluate, run, training_arguments, weighted_token_loss
from medalpaca_core.models.loading import load_tokenizer
from tests.finetune.test_train import tiny_config


def test_the_probe_is_the_softmax_at_each_answers_last_position(tiny_dir):
    tokenizer = load_tokenizer(str(tiny_dir))
    config = tiny_config(tiny_dir, tiny_dir / "unused", "lora")
    data = prepare(config.data, tokenizer)
    probe = EosProbe.from_validation(data.validation, tokenizer.eos_token_id)
    assert probe is not None and all(ids[-1] == tokenizer.eos_token_id for ids in probe.examples)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_dir), dtype=torch.float32)
    direct = []
    for ids in probe.examples:
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids[:-1]])).logits[0, -1]
        direct.append(torch.softmax(logits, -1)[tokenizer.eos_token_id].item())
    assert abs(probe(model) - sum(direct) / len(direct)) < 1e-5  # padding in its batches changes nothing


def test_no_answer_that_ends_means_no_probe():
    assert EosProbe.from_validation([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}], eos_id=2) is None


def test_a_length_grouped_run_logs_the_probe_at_every_evaluation(tmp_path, tiny_dir):
    config = tiny_config(tiny_dir, tmp_path / "out", "lora", group_by_length=True, eval_steps=3)
    result = run(replace(config, train=replace(config.train, eval_on_start=True)))
    with (result.output_dir / "loss_log.csv").open() as handle:
        evaluations = [row for row in csv.DictReader(handle) if row["val_loss"]]
    assert [int(row["step"]) for row in evaluations] == [0, 3, 6]
    assert all(0.0 < float(row["val_eos_prob"]) < 1.0 for row in evaluations)
    assert result.eos_prob_before == float(evaluations[0]["val_eos_prob"])
    assert result.eos_prob_after == float(evaluations[-1]["val_eos_prob"])
    assert "P(EOS) after the gold answer" in (result.output_dir / "README.md").read_text()


def test_the_validation_loss_is_the_same_in_batches_as_one_example_at_a_time(tmp_path, tiny_dir):
    """Validation runs several examples per pass, yet every example still weighs the same (the mean of
    each example's token loss), as when transformers evaluated them one by one."""
    tokenizer = load_tokenizer(str(tiny_dir))
    config = tiny_config(tiny_dir, tmp_path / "out", "lora")
    data = prepare(config.data, tokenizer)
    assert len(data.validation) % EVAL_BATCH, "a last, shorter batch is part of the check"
    model = AutoModelForCausalLM.from_pretrained(str(tiny_dir), dtype=torch.float32)
    args = training_arguments(config, resuming=False)
    collator = Collator(tokenizer.pad_token_id)
    one_by_one = Trainer(
        model=model,
        args=replace(args, per_device_eval_batch_size=1),
        eval_dataset=data.validation,
        data_collator=collator,
    ).evaluate()["eval_loss"]
    assert args.per_device_eval_batch_size == EVAL_BATCH > 1
    assert abs(evaluate(model, args, data, collator) - one_by_one) < 1e-5


def test_an_eos_weight_of_one_is_the_models_own_loss(tiny_dir):
    model = AutoModelForCausalLM.from_pretrained(str(tiny_dir), dtype=torch.float32)
    ids = torch.tensor([[5, 6, 7, 8, 2, 2], [5, 9, 10, 2, 2, 2]])
    labels = torch.tensor([[-100, -100, 7, 8, 2, -100], [-100, 9, 10, 2, -100, -100]])  # pads share EOS's id
    logits = model(input_ids=ids).logits
    assert torch.allclose(weighted_token_loss(logits, labels, 2, 1.0), model(input_ids=ids, labels=labels).loss)


def test_the_eos_weight_counts_only_the_answers_own_eos(tiny_dir):
    model = AutoModelForCausalLM.from_pretrained(str(tiny_dir), dtype=torch.float32)
    ids = torch.tensor([[5, 6, 7, 2, 2]])
    labels = torch.tensor([[-100, 6, 7, 2, -100]])  # the last 2 is padding: labelled -100, never weighted
    logits = model(input_ids=ids).logits
    tokens = torch.nn.functional.cross_entropy(logits[0, :-1], labels[0, 1:], ignore_index=-100, reduction="none")
    expected = (tokens[0] + tokens[1] + 3 * tokens[2]) / 3  # normalised by the 3 labelled tokens, not the weights
    assert torch.allclose(weighted_token_loss(logits, labels, 2, 3.0), expected)
    assert torch.allclose(weighted_token_loss(logits, labels, 2, 3.0, num_items=6), expected / 2)


def test_a_weighted_eos_is_learnt_sooner(tmp_path, tiny_dir):
    """The same run with the EOS label weighing 8 tokens ends with a higher P(EOS) after gold answers."""
    plain = tiny_config(tiny_dir, tmp_path / "plain", "lora", eval_steps=0)
    weighted = replace(plain, output=str(tmp_path / "weighted"), train=replace(plain.train, eos_weight=8.0))
    trained = run(weighted)
    assert trained.eos_prob_after > run(plain).eos_prob_after
    assert "the EOS ending each answer counts 8x" in (trained.output_dir / "README.md").read_text()  # the card says so
