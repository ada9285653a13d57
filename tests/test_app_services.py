"""The app's logic outside the UI: default selection and labels, the votes store, exports, the models table."""

from __future__ import annotations

import json
import random
import sqlite3

import pytest

from medalpaca_core.arena.export import Comparison, to_markdown, write_exports
from medalpaca_core.arena.votes import ALL_BAD, VoteError, VoteStore
from medalpaca_core.engine import Studio
from medalpaca_core.generation.answers import Answer, Stats
from medalpaca_core.generation.settings import PRESETS
from medalpaca_core.models.manager import ModelManager
from medalpaca_core.models.registry import Registry, Variant
from medalpaca_core.models.selection import SpeedLog, choice_label, default_variants, fresh_round, precision
from medalpaca_core.runtime.paths import PROJECT_ROOT
from ui.views.catalog import catalog, format_reference

STATS = Stats(20, 12, 0.25, 1.5, 1_000_000, "none", False, "length")


@pytest.fixture
def manager():
    return ModelManager(device="cpu")


def comparison(text: str = "Thirst and tiredness.") -> Comparison:
    answers = {
        "a": Answer("a", text, "done", None, STATS),
        "b": Answer("b", "", "error", "b is unavailable: offline"),
    }
    return Comparison.from_answers("Symptoms of diabetes?", "", PRESETS["sampling"], answers, {"a": "Model A"})


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


def test_votes_are_stored_once_and_ranked(tmp_path):
    store = VoteStore(tmp_path / "votes.sqlite3")
    first, second = comparison(), comparison()
    store.record(first, "a")
    with pytest.raises(VoteError, match="already has a vote"):
        store.record(first, ALL_BAD)  # a comparison counts once
    store.record(second, ALL_BAD)
    assert store.count() == 2
    board = {row.variant_id: row for row in store.leaderboard()}
    assert (board["b"].wins, board["b"].comparisons, board["a"].wins, board["a"].all_bad) == (0, 2, 1, 1)
    with sqlite3.connect(store.path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        columns = [row[1] for row in connection.execute("PRAGMA table_info(votes)")]
    assert columns == [
        "id",
        "comparison_id",
        "created",
        "voted",
        "winner",
        "variant_ids",
        "question",
        "context",
        "answers",
        "settings",
        "blind",
    ]


def test_a_vote_must_name_a_compared_variant(tmp_path):
    with pytest.raises(VoteError, match=r"'c': the answers are from a \(or"):
        VoteStore(tmp_path / "votes.sqlite3").record(comparison(), "c")


def test_exports_hold_everything_and_keep_text_verbatim(tmp_path):
    text = "Use ``` fences?\n<b>not bold</b>"
    markdown, json_file = write_exports(comparison(text), tmp_path)
    report = json.loads(json_file.read_text())
    assert report["settings"]["temperature"] == 0.4 and report["answers"][0]["stats"]["tokens_per_s"] > 0
    assert report["answers"][1]["error"] == "b is unavailable: offline"
    body = markdown.read_text()
    assert f"````text\n{text}\n````" in body and "## Model A (`a`)" in body
    assert "sampling (temperature 0.4, top_p 0.9, top_k 50)" in to_markdown(comparison())


def test_models_table(tiny_registry, manager):
    tiny_registry.add(Variant(id="hub", label="Hub", base="medalpaca/medalpaca-7b", reference={"step1": 0.473}))
    studio = Studio(tiny_registry, manager)
    studio.manager.acquire(tiny_registry.get("tiny-lora-0"))
    rows = {row.variant_id: row for row in catalog(studio)}
    assert rows["tiny"].actual.endswith("(shared base)") and rows["tiny-int8"].actual == "-"
    assert not rows["hub"].available and rows["hub"].reference == "step1 47.3%"
    assert format_reference({"step2": 47.7}) == "step2 47.7%"


def test_readme_front_matter_configures_the_space():
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    front, body = readme.removeprefix("---\n").split("\n---\n", 1)
    fields = dict(line.split(": ", 1) for line in front.splitlines())
    pinned = next(line for line in (PROJECT_ROOT / "requirements.txt").read_text().splitlines() if "gradio==" in line)
    assert readme.startswith("---\n") and fields["sdk"] == "gradio" and fields["app_file"] == "app.py"
    assert pinned == f"gradio=={fields['sdk_version']}" and len(fields["short_description"]) <= 60
    assert body.lstrip().startswith("# MedAlpaca Studio\n\n```bash\nmake demo")
