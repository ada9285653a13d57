"""What an adapter changes: first departure from the base's answer, the shared text, the share of tokens kept."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from medalpaca_core.arena.divergence import base_of, departure, departures
from medalpaca_core.arena.notes import adapter_lines, column_notes
from medalpaca_core.engine import Studio
from medalpaca_core.generation.answers import Answer, Status
from medalpaca_core.generation.settings import GenerationSettings
from medalpaca_core.models.manager import ModelManager


def letters(ids):
    return "".join(chr(ord("a") + i) for i in ids)


def test_first_departure_and_share_kept():
    change = departure([0, 1, 2, 3, 4], [0, 1, 7, 3, 4], letters)
    assert (change.index, change.adapter_token, change.base_token, change.prefix) == (2, "h", "c", "ab")
    assert change.kept == pytest.approx(4 / 5)
    assert change.line(
        "lora", "base"
    ) == "lora departs from its base base at token 3: says 'h' where base says 'c', " + (
        "after 'ab'. It keeps 80% of base's tokens."
    )


def test_two_adapters_lines_name_them_apart_even_at_the_same_departure():
    change = departure([0, 1, 2], [0, 1, 7], letters)
    assert change.line("lora-a", "base") != change.line("lora-b", "base")


def test_identical_shorter_and_longer_answers():
    same = departure([0, 1], [0, 1], letters)
    assert (
        same.identical
        and same.kept == 1.0
        and same.line("lora", "base") == ("lora answered exactly as its base base: this adapter changed nothing here.")
    )
    shorter = departure([0, 1, 2, 3], [0, 1], letters)
    assert shorter.index == 2 and shorter.kept == 0.5 and "stops where base goes on" in shorter.line("lora", "base")
    longer = departure([0, 1], [0, 1, 5], letters)
    assert longer.kept == 1.0 and "goes on with 'f' where base stops" in longer.line("lora", "base")
    rewritten = departure([0, 1, 2], [5, 6], letters)
    assert rewritten.index == 0 and rewritten.kept == 0.0 and "from its first token" in rewritten.line("lora", "base")


def test_a_long_shared_text_is_shown_by_its_end():
    change = departure(list(range(20)) * 6 + [1], list(range(20)) * 6 + [2], letters)
    assert "after '…" in change.line("lora", "base") and change.prefix.endswith("rst")


def test_adapters_pair_with_their_base_in_the_same_precision(tiny_registry):
    shown = [tiny_registry.get(i) for i in ("tiny", "tiny-lora-0", "tiny-lora-1", "tiny-int8")]
    assert base_of(shown, shown) == {"tiny-lora-0": "tiny", "tiny-lora-1": "tiny"}
    assert base_of(shown, shown[1:]) == {}  # no base in the batch, nothing to compare with


def test_departures_with_the_real_tokenizer(tiny_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    texts = {
        "base": "Diabetes causes thirst and frequent urination.",
        "same": "Diabetes causes thirst and frequent urination.",
        "other": "Diabetes causes hunger and frequent urination.",
    }
    found = departures(texts, {"same": "base", "other": "base", "missing": "base"}, tokenizer)
    assert set(found) == {"same", "other"} and found["same"].identical
    assert found["other"].prefix == "Diabetes causes" and found["other"].adapter_token.strip() == "hunger"
    assert 0.5 < found["other"].kept < 1


def test_column_views_on_the_tiny_studio(tiny_registry):
    """The prompt each answer carries is what the model got; adapters' lines name their departure from the base."""
    studio = Studio(tiny_registry, ModelManager(device="cpu"))
    settings = GenerationSettings(max_new_tokens=8)
    view = studio.ask(["tiny-lora-0"], "What is asthma?", "Airways narrow.", settings)["tiny-lora-0"].prompt
    assert "What is asthma?" in view.text and "Airways narrow." in view.text and not view.truncated
    assert view.tokens > 10 and view.caption() == f"{view.tokens:,} prompt tokens, not truncated"
    long = studio.ask(["tiny-lora-0"], "What is asthma?", "Airways narrow. " * 400, settings)["tiny-lora-0"].prompt
    assert long.truncated and "truncated" in long.caption() and long.tokens < view.tokens + 512
    answers = studio.ask(["tiny", "tiny-lora-0"], "What is asthma?", settings=settings)
    texts = {ident: answer.text for ident, answer in answers.items()}
    lines = adapter_lines(studio, {**texts, "tiny-lora-1": texts["tiny"]})
    assert set(lines) == {"tiny-lora-0", "tiny-lora-1"}
    assert lines["tiny-lora-1"].startswith("tiny-lora-1 answered exactly as its base tiny")
    assert lines["tiny-lora-0"].startswith(("tiny-lora-0 departs from its base tiny", "tiny-lora-0 answered exactly"))
    notes = column_notes(studio, {**answers, "tiny-int8": Answer("tiny-int8", "x", Status.DONE)})
    assert notes["tiny-lora-0"].change == lines["tiny-lora-0"] and notes["tiny"].change == ""
    assert notes["tiny"].prompt.tokens == notes["tiny-lora-0"].prompt.tokens > 10
    assert notes["tiny-int8"].prompt is None, "a note loads nothing: the int8 base was never loaded here"
