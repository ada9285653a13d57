"""What a picker offers: the default line-up, an arena's fresh round, precision, slow marks and measured speeds."""

from __future__ import annotations

import random

import pytest

from medalpaca_core.generation.answers import Answer, Stats
from medalpaca_core.models.manager import ModelManager
from medalpaca_core.models.registry import Registry, Variant
from medalpaca_core.models.selection import SpeedLog, choice_label, default_variants, fresh_round, precision

STATS = Stats(20, 12, 0.25, 1.5, 1_000_000, "none", False, "length")


@pytest.fixture
def manager():
    return ModelManager(device="cpu")


def test_default_is_the_base_and_its_adapters(tiny_registry, manager):
    assert default_variants(tiny_registry, manager) == ["tiny", "tiny-lora-0", "tiny-lora-1"]


def test_default_without_adapters_falls_back_to_other_fast_variants(tiny_registry, manager):
    without = Registry([v for v in tiny_registry if not v.adapter])
    chosen = default_variants(without, manager)
    assert chosen[:2] == ["tiny", "tiny-qa"] and "tiny-int8" not in chosen and len(chosen) == 3


def test_nothing_available_means_no_default(manager):
    assert default_variants(Registry([Variant(id="hub", label="h", base="medalpaca/medalpaca-7b")]), manager) == []


def test_a_fresh_round_draws_fast_variants_at_random(tiny_registry, manager):
    fast = set(default_variants(tiny_registry, manager, count=99))
    rounds = {tuple(fresh_round(tiny_registry, manager, 2, random.Random(seed))) for seed in range(20)}
    assert all(len(drawn) == 2 and set(drawn) <= fast for drawn in rounds)
    assert len(rounds) > 1, "a new round is not the same line-up every time"
    assert set(fresh_round(tiny_registry, manager, 99, random.Random(0))) == fast


def test_precision_says_how_the_weights_are_held(tiny_registry):
    assert [precision(tiny_registry.get(ident), "cpu") for ident in ("tiny", "tiny-int8", "tiny-nf4")] == [
        "fp32",
        "int8",
        "nf4",
    ]


def test_labels_mark_slow_variants(tiny_registry):
    int8 = tiny_registry.get("tiny-int8")
    assert "slow" in choice_label(int8, "cpu")
    assert "measured 8.5 tok/s" in choice_label(int8, "cpu", measured=8.5)
    assert "slow" not in choice_label(int8, "cuda:0")


def test_speed_log_keeps_long_finished_answers_only():
    speeds = SpeedLog()
    speeds.record([Answer("a", "x", "done", None, STATS), Answer("b", "x", "generating", None, STATS)])
    assert speeds.get("a") == pytest.approx(STATS.tokens_per_s) and speeds.get("b") is None
