"""The real lm-evaluation-harness against a live studio: its ``local-completions`` model runs the shipped
task file (MedQA, options scored by their text) through ``/v1/completions`` and picks, question by question,
what the studio's own ``eval --prompt harness --choice text`` picks, with the same log-likelihoods."""

from __future__ import annotations

import pytest

from benchmarks.eval_loglik import generated_questions
from benchmarks.harness_agreement import LETTERS, TASK, harness_picks, studio_picks, task_folder, write_medqa
from medalpaca_core.engine import Studio
from medalpaca_core.models.manager import ModelManager
from medalpaca_core.models.registry import Registry, Variant
from tests.app_server import serve

pytest.importorskip("lm_eval")

VARIANT = "tiny-lora-0"


@pytest.fixture(scope="module")
def studio(tiny_dir, tiny_adapters) -> Studio:
    lora = Variant(id=VARIANT, label="lora", base=str(tiny_dir), adapter=str(tiny_adapters[0]), dtype="float32")
    return Studio(Registry([lora]), ModelManager(device="cpu"))


def test_the_harness_through_the_api_agrees_with_eval(studio, tiny_dir, tmp_path, default_model_dir):
    questions = generated_questions(6, seed=1)
    folder = task_folder(write_medqa(questions, tmp_path / "medqa.jsonl"), tmp_path / "task")
    assert (folder / f"{TASK}.yaml").read_text().count(str(tmp_path / "medqa.jsonl")) == 1
    with serve(studio, tmp_path / "home", default_model_dir) as url:
        theirs = harness_picks(url, VARIANT, str(tiny_dir), folder, batch_size=3)
    ours = studio_picks(studio, questions, VARIANT)
    assert [pick["acc"] for pick in theirs] == [pick["acc"] for pick in ours]
    assert [pick["acc_norm"] for pick in theirs] == [pick["acc_norm"] for pick in ours]
    for mine, harness in zip(ours, theirs, strict=True):
        for letter in LETTERS:
            assert harness["loglik"][letter] == pytest.approx(mine["loglik"][letter], abs=1e-3)
