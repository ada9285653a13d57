"""RAFT contexts: the builder (medalpaca_core.text.grounding), its use in training data and in the perplexity report."""

from __future__ import annotations

import json

import pytest

from finetune.config import ConfigError, DataConfig, FinetuneConfig, resolve, validate
from finetune.data import DataError, prepare, write_validation
from medalpaca_core import cli
from medalpaca_core.engine import Studio
from medalpaca_core.evaluation import commands
from medalpaca_core.models.loading import load_tokenizer
from medalpaca_core.models.manager import ModelManager
from medalpaca_core.text.grounding import PASSAGE_SEPARATOR, Grounding, GroundingError, ground, passage
from medalpaca_core.text.prompts import render
from medalpaca_core.text.records import QAPair

PAIRS = [
    QAPair("Answer this question truthfully", f"What is condition {n}?", f"Condition {n} is rare. " * 3)
    for n in range(20)
]


def test_passages_are_whole_sentences_within_the_limit():
    text = "First sentence here. Second one is longer than the first. Third."
    assert passage(text, 500) == text
    assert passage(text, 60) == "First sentence here. Second one is longer than the first."
    assert passage(text, 40) == "First sentence here."
    assert passage("one very long sentence without any stop at all", 45) == "one very long sentence without any stop at"


def test_ground_gives_a_seeded_share_gold_among_distractors():
    settings = Grounding(share=0.5, distractors=2, no_gold_share=0.0, passage_chars=400, seed=7)
    grounded = ground(PAIRS, settings)
    assert grounded == ground(PAIRS, settings), "deterministic by seed"
    assert grounded != ground(PAIRS, Grounding(0.5, 2, 0.0, 400, seed=8))
    with_context = [(before, after) for before, after in zip(PAIRS, grounded, strict=True) if after.context]
    assert len(with_context) == 10
    for before, after in with_context:
        passages = after.context.split(PASSAGE_SEPARATOR)
        assert len(passages) == 3 and len(set(passages)) == 3
        assert passage(before.output, 400) in passages, "the gold passage is among the distractors"
        assert (after.input, after.output) == (before.input, before.output), "question and answer unchanged"
    assert {p.input for p in grounded} == {p.input for p in PAIRS}


def test_no_gold_contexts_hold_only_other_records_passages():
    grounded = ground(PAIRS, Grounding(share=1.0, distractors=2, no_gold_share=1.0, seed=3))
    for before, after in zip(PAIRS, grounded, strict=True):
        passages = after.context.split(PASSAGE_SEPARATOR)
        assert len(passages) == 3 and passage(before.output, 400) not in passages
    mixed = ground(PAIRS * 10, Grounding(share=1.0, distractors=2, no_gold_share=0.2, seed=3))
    without_gold = sum(passage(p.output, 400) not in p.context.split(PASSAGE_SEPARATOR) for p in mixed)
    assert 20 <= without_gold <= 60, f"about a fifth of 200 contexts lack the gold passage, got {without_gold}"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (Grounding(share=1.5), "context share must be between 0 and 1"),
        (Grounding(share=0.5, no_gold_share=-0.1), "no-gold share must be between 0 and 1"),
        (Grounding(share=0.5, distractors=0), "distractors must be between 1 and 16"),
        (Grounding(share=0.5, passage_chars=5), "at least 40 characters"),
    ],
)
def test_out_of_range_settings_are_refused(settings, message):
    with pytest.raises(GroundingError, match=message):
        ground(PAIRS, settings)


def test_too_few_records_for_the_distractors():
    with pytest.raises(GroundingError, match="4 distractors need at least 5 records with different answers; got 3"):
        ground(PAIRS[:3], Grounding(share=1.0, distractors=4))
    assert ground(PAIRS[:3], Grounding(share=0.0, distractors=4)) == PAIRS[:3], "no context asked: nothing needed"
    smallest = ground(PAIRS[:3], Grounding(share=1.0, distractors=2, no_gold_share=1.0))  # used to loop forever
    assert all(len(pair.context.split(PASSAGE_SEPARATOR)) == 2 for pair in smallest)


def test_config_refuses_a_context_mix_out_of_range():
    with pytest.raises(ConfigError, match=r"data: context share must be between 0 and 1, got 2\.0"):
        validate(resolve({}, {"method": "lora", "data": {"sources": ["x.json"], "context_share": 2}}))
    config = validate(resolve({}, {"method": "lora", "data": {"sources": ["x.json"], "context_share": 0.3}}))
    assert isinstance(config, FinetuneConfig) and config.data.grounding().share == 0.3


@pytest.fixture
def studio(tiny_registry):
    return Studio(tiny_registry, ModelManager(device="cpu"))


@pytest.fixture(scope="module")
def tokenizer(tiny_dir):
    return load_tokenizer(str(tiny_dir))


def write_records(path, count: int, answer: str = "It is treated with rest and fluids.") -> str:
    records = [
        {"instruction": "", "input": f"What helps condition {n}?", "output": f"{answer} ({n})"} for n in range(count)
    ]
    path.write_text(json.dumps(records))
    return str(path)


def test_training_data_gets_contexts_rendered_by_the_prompt_builder(tmp_path, tokenizer):
    source = write_records(tmp_path / "meadow.json", 40)
    plain = prepare(DataConfig(sources=[source], cutoff=256), tokenizer)
    mixed = prepare(DataConfig(sources=[source], cutoff=256, context_share=0.5), tokenizer)
    assert len(mixed.train) == len(plain.train) and mixed.validation == plain.validation, "validation stays plain"
    assert mixed.grounded == round(0.5 * len(plain.train)) and mixed.ungrounded == 0
    assert "training examples with a context" in mixed.summary()
    longer = [m for m, p in zip(mixed.train, plain.train, strict=True) if len(m["input_ids"]) > len(p["input_ids"])]
    assert len(longer) == mixed.grounded
    example = longer[0]
    prompt = tokenizer.decode(example["input_ids"][: example["labels"].count(-100)])
    assert prompt.startswith(render("medalpaca", QAPair("i", "q", "a").parts())[:40])
    assert "### Input:\n" in prompt and PASSAGE_SEPARATOR in prompt, "context passages precede the question"
    assert example["input_ids"][-1] == tokenizer.eos_token_id, "a context never cuts the answer"


def test_a_context_that_would_cut_the_answer_is_dropped_and_counted(tmp_path, tokenizer):
    source = write_records(tmp_path / "meadow.json", 40, answer="Rest. " * 20)
    plain = prepare(DataConfig(sources=[source], cutoff=96), tokenizer)
    mixed = prepare(DataConfig(sources=[source], cutoff=96, context_share=1.0), tokenizer)
    assert mixed.grounded == 0 and mixed.ungrounded == len(plain.train)
    assert mixed.train == plain.train, "kept without a context, answers whole"
    assert "kept without one: their answer would not fit the cutoff" in mixed.summary()


def test_training_data_with_too_few_records_for_distractors(tmp_path, tokenizer):
    source = write_records(tmp_path / "meadow.json", 4)
    with pytest.raises(DataError, match="Cannot build contexts from 3 training records: 3 distractors need"):
        prepare(DataConfig(sources=[source], context_share=1.0, context_distractors=3, val_fraction=0.25), tokenizer)


def test_validation_split_written_for_the_report(tmp_path, tokenizer):
    source = write_records(tmp_path / "meadow.json", 40)
    out = tmp_path / "held" / "out.json"
    assert write_validation(DataConfig(sources=[source]), out) == 4
    held = {r["input"] for r in json.loads(out.read_text())}
    trained = prepare(DataConfig(sources=[source]), tokenizer)
    assert len(held) == 4 and len(trained.train) == 36


def test_perplexity_report_with_context(studio, tmp_path, monkeypatch, capsys):
    source = write_records(tmp_path / "meadow.json", 8)
    monkeypatch.setattr(commands, "Studio", lambda: studio)
    argv = ["perplexity", "--variant", "tiny", "--variant", "tiny-lora-0", "--data", source, "--with-context"]
    assert cli.main(argv) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| tiny")]
    assert len(rows) == 2
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        without, with_context, ratio = float(cells[3]), float(cells[5]), float(cells[6])
        assert with_context != without and ratio == pytest.approx(with_context / without, abs=1e-3)
    assert cli.main([*argv, "--distractors", "0"]) == 2
    assert "distractors must be between 1 and 16" in capsys.readouterr().err
