"""The answers report (natural stops, repeated sentences, lengths, P(EOS) after gold) on tiny random LLaMAs.

``tiny-stop`` is the tiny model trained for a few steps to predict the end-of-sequence token at
every position, so the test knows a variant that always stops at once; the untrained ``tiny`` never
picks EOS greedily (one token of a 49k vocabulary) and runs to the token limit.
"""

import json

import pytest

from medalpaca_core import cli
from medalpaca_core.engine import Studio
from medalpaca_core.evaluation import commands
from medalpaca_core.evaluation.answers import AnswersConfig, answer_quality, answers_table
from medalpaca_core.evaluation.eos import eos_probabilities
from medalpaca_core.evaluation.repetition import looping_phrase, repeated_sentence, repetition, sentences
from medalpaca_core.generation.decoding import eos_token_ids
from medalpaca_core.models.manager import ModelManager
from medalpaca_core.models.registry import Variant
from medalpaca_core.text.prompts import encode, render
from medalpaca_core.text.records import QAPair
from tests.tiny import train_tiny

PAIRS = [
    QAPair("Answer this question truthfully", "What are the symptoms of diabetes?", "Thirst, frequent urination."),
    QAPair("Answer this question truthfully", "Who is at risk for gout?", "Men over forty and people who drink beer."),
    QAPair("Answer this question truthfully", "What causes scurvy?", "A lack of vitamin C in the diet for months."),
]


def test_sentences_are_split_at_ends_line_breaks_and_flattened_lists():
    assert sentences("One two. Three?\nFour! liver diseaseA history") == [
        "one two",
        "three",
        "four",
        "liver disease",
        "a history",
    ]


def test_a_repeated_sentence_is_found_whatever_its_case_and_punctuation():
    looping = "The symptoms include thirst, urination. The symptoms include thirst; urination! The end"
    assert repeated_sentence(looping) == "the symptoms include thirst urination"
    flattened = "People with:\nA history of liver transplantationA history of liver transplantationA history o"
    assert repeated_sentence(flattened) == "a history of liver transplantation"


def test_short_or_distinct_sentences_are_not_repetition():
    assert repeated_sentence("Yes. Yes. No. No.") is None  # under four words
    assert repeated_sentence("Yes. Yes.", min_words=1) == "yes"
    assert repeated_sentence("Diabetes causes thirst. Diabetes causes frequent urination.") is None
    assert repeated_sentence("") is None
    with pytest.raises(ValueError, match="min_words must be at least 1, got 0"):
        repeated_sentence("a", min_words=0)


def test_a_loop_without_sentence_breaks_is_found():
    looping = "Tracheitis is caused by:\nBacteria " + "Viruses that cause pneumonia or bronchitis " * 4
    assert repeated_sentence(looping) is None  # one long "sentence"
    assert looping_phrase(looping) == "viruses that cause pneumonia or bronchitis viruses that"
    assert repetition(looping) == looping_phrase(looping)
    twice = "Call your doctor if the pain gets worse at night. " * 2
    assert repetition(twice) == "call your doctor if the pain gets worse at night"  # the sentence rule first


def test_a_phrase_said_twice_is_not_a_loop():
    leaflet = "Call your health care provider if you are pregnant. Call your health care provider if you bleed."
    assert looping_phrase(leaflet) is None and repetition(leaflet) is None
    assert looping_phrase("one two three four five six seven eight " * 2) is None
    assert looping_phrase("one two three four five six seven eight " * 3 + "nine") is not None
    assert looping_phrase("") is None


@pytest.fixture(scope="session")
def tiny_stop_dir(tmp_path_factory, tiny_dir):
    """The tiny model, trained until it predicts EOS after any prefix (a fraction of a second of Adam)."""

    def loss(model, tokenizer):
        import torch

        ids = torch.tensor([tokenizer(render("medalpaca", PAIRS[0].parts()) + PAIRS[0].output)["input_ids"]])
        targets = torch.full(ids.shape[1:], tokenizer.eos_token_id)
        return torch.nn.functional.cross_entropy(model(input_ids=ids).logits[0], targets)

    return train_tiny(tiny_dir, tmp_path_factory.mktemp("tiny-stop") / "tiny-stop", loss, steps=20)


@pytest.fixture
def studio(tiny_registry, tiny_stop_dir):
    tiny_registry.add(Variant(id="tiny-stop", label="always stops", base=str(tiny_stop_dir), dtype="float32"))
    return Studio(tiny_registry, ModelManager(device="cpu"))


@pytest.mark.parametrize("variant_id", ["tiny", "tiny-lora-0", "tiny-qa"])
def test_eos_probability_equals_a_direct_forward_pass(studio, variant_id):
    """Batched, left-padded, adapter per row: the same number as one plain forward pass per pair."""
    import torch

    variant = studio.variant(variant_id)
    loaded, _ = studio.acquire(variant)
    stops = sorted(eos_token_ids(loaded.model, loaded.tokenizer))
    batched = eos_probabilities(studio, variant_id, PAIRS, batch_size=2)
    for pair, probability in zip(PAIRS, batched, strict=True):
        prompt = render(variant.template, pair.parts())
        ids = encode(variant.template, prompt, loaded.tokenizer)
        ids += loaded.tokenizer(pair.output, add_special_tokens=False)["input_ids"]
        with torch.inference_mode(), loaded.rows_adapters([studio.acquire(variant)[1]]) as kwargs:
            logits = loaded.model(input_ids=torch.tensor([ids]), **kwargs).logits[0, -1].float()
        assert probability == pytest.approx(float(torch.softmax(logits, -1)[stops].sum()), rel=1e-3, abs=1e-7)


def test_a_pair_beyond_the_cutoff_gets_no_eos_probability(studio):
    """Fine-tuning cuts such an example before its EOS: its end was never taught."""
    longer = QAPair("Answer this question truthfully", "Why?", "word " * 40)
    assert eos_probabilities(studio, "tiny", [PAIRS[0], longer])[1] is not None
    assert eos_probabilities(studio, "tiny", [PAIRS[0], longer], cutoff=64)[1] is None
    beyond_the_window = QAPair("Answer this question truthfully", "Why?", "word " * 600)  # the tiny window: 512
    assert eos_probabilities(studio, "tiny", [beyond_the_window], cutoff=4096) == [None]


def test_a_variant_that_always_stops_and_one_that_never_does(studio):
    config = AnswersConfig(max_new_tokens=6)
    report = answer_quality(studio, ["tiny-stop", "tiny"], PAIRS, config)
    stopper, runner = report["tiny-stop"], report["tiny"]
    assert [len(row.answers) for row in (stopper, runner)] == [3, 3]
    assert stopper.natural_stops == 1.0 and stopper.mean_tokens == 0 and min(stopper.eos_probabilities) > 0.5
    assert runner.natural_stops == 0.0 and runner.mean_tokens == 6 and max(runner.eos_probabilities) < 0.01
    assert {answer.finish_reason for answer in runner.answers} == {"length"}
    assert stopper.gold_mean_tokens == runner.gold_mean_tokens == 6  # every gold answer is longer than 6 tokens
    table = answers_table(report, config)
    assert "| tiny-stop | 3 | 3 of 3 (100%) | 0 of 3 (0%) | 0 of 3 (0%) | 0 | 6 |" in table
    assert "| tiny | 3 | 0 of 3 (0%) |" in table


def test_bad_settings_are_refused_before_any_work(studio):
    with pytest.raises(ValueError, match="max_new_tokens must be at least 1, got 0"):
        answer_quality(studio, ["tiny"], PAIRS, AnswersConfig(max_new_tokens=0))


def test_cli_answers_prints_the_table_and_writes_every_answer(studio, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(commands, "Studio", lambda: studio)
    data = tmp_path / "heldout.json"
    data.write_text(json.dumps([{"instruction": p.instruction, "input": p.input, "output": p.output} for p in PAIRS]))
    detail = tmp_path / "answers.json"
    argv = ["answers", "--data", str(data), "--limit", "2", "--max-new-tokens", "4", "--output", str(detail)]
    assert cli.main([*argv, "--variant", "tiny-stop", "--variant", "tiny"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| tiny")]
    assert [row.split(" | ")[1] for row in rows] == ["2", "2"]
    written = json.loads(detail.read_text())
    assert [answer["question"] for answer in written["tiny"]] == [PAIRS[0].input, PAIRS[1].input]
    assert written["tiny-stop"][0]["finish_reason"] == "eos"
    assert cli.main([*argv, "--variant", "nope"]) == 2
    assert "Unknown variant 'nope'" in capsys.readouterr().err
    assert cli.main(["answers", "--data", str(data), "--variant", "tiny", "--limit", "0"]) == 2
    assert "--limit must be at least 1, got 0" in capsys.readouterr().err
