"""A finished comparison as a record: Markdown and JSON downloads that keep every answer's text verbatim."""

from __future__ import annotations

import json

from medalpaca_core.arena.export import Comparison, to_markdown, write_exports
from medalpaca_core.generation.answers import Answer, Stats
from medalpaca_core.generation.settings import PRESETS

STATS = Stats(20, 12, 0.25, 1.5, 1_000_000, "none", False, "length")


def finished_comparison(text: str = "Thirst and tiredness.") -> Comparison:
    answers = {
        "a": Answer("a", text, "done", None, STATS),
        "b": Answer("b", "", "error", "b is unavailable: offline"),
    }
    return Comparison.from_answers("Symptoms of diabetes?", "", PRESETS["sampling"], answers, {"a": "Model A"})


def test_exports_hold_everything_and_keep_text_verbatim(tmp_path):
    text = "Use ``` fences?\n<b>not bold</b>"
    markdown, json_file = write_exports(finished_comparison(text), tmp_path)
    report = json.loads(json_file.read_text())
    assert report["settings"]["temperature"] == 0.4 and report["answers"][0]["stats"]["tokens_per_s"] > 0
    assert report["answers"][1]["error"] == "b is unavailable: offline"
    body = markdown.read_text()
    assert f"````text\n{text}\n````" in body and "## Model A (`a`)" in body
    assert "sampling (temperature 0.4, top_p 0.9, top_k 50)" in to_markdown(finished_comparison())
