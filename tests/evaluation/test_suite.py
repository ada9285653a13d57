"""``eval --suite medical`` on the bundled samples, harness prompts and few-shot runs, on the tiny model."""

import json
from types import SimpleNamespace

import pytest

from medalpaca_core import cli
from medalpaca_core.engine import Studio
from medalpaca_core.evaluation import commands, harness, runner
from medalpaca_core.evaluation.loglik import loglik_records
from medalpaca_core.evaluation.prompt import PromptStyle
from medalpaca_core.evaluation.suite import BUNDLED_SUITE, load_suite
from medalpaca_core.models.manager import ModelManager
from medalpaca_core.serving.ratelimit import RateLimiter

TASKS = [
    "mmlu_clinical_knowledge",
    "medmcqa_validation",
    "medqa_4options_test",
    "medqa_5options_test",
    "mmlu_anatomy",
    "mmlu_medical_genetics",
    "pubmedqa_labeled",
]


@pytest.fixture
def studio(tiny_registry):
    return Studio(tiny_registry, ModelManager(device="cpu"))


def test_suite_on_the_bundled_samples_with_statistics_and_resume(studio, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(commands, "Studio", lambda: studio)
    out = tmp_path / "suite"
    argv = ["eval", "--suite", "medical", "--variant", "tiny", "--variant", "tiny-lora-0", "--prompt", "harness"]
    argv += ["--rotate", "--limit", "2", "--output", str(out)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    for task in TASKS:
        assert f"| {task} | " in printed, task
    assert "| pubmedqa_labeled | PubMedQA (labelled; the abstract is the context) | 2 |" in printed
    assert "| tiny · loglik | tiny-lora-0 · loglik | 14 |" in printed, "McNemar on the 14 shared questions"
    rows = {line.split(" | ")[0].strip("| "): line for line in printed.splitlines() if line.startswith("| ")}
    assert "; norm" in rows["pubmedqa_labeled"], "yes/no/maybe differ in length: acc_norm can differ"
    assert "; norm" not in rows["medqa_4options_test"], "letters are one byte each: acc_norm would repeat acc"
    document = json.loads((out / "results.json").read_text())
    statistics = document["statistics"]
    assert (
        set(statistics["calibration"]) == set(statistics["position_bias"]) == {"tiny · loglik", "tiny-lora-0 · loglik"}
    )
    pair = statistics["mcnemar"][0]
    assert pair["n"] == 14 and 0 < pair["p_value"] <= 1
    records = document["runs"]["tiny | loglik"]["records"]
    exam, _ = load_suite(BUNDLED_SUITE)
    for question in exam.limited(2).questions:
        record = records[question.key]
        assert record["prompt"] == harness.context(question, exam.tasks[question.step].kind)
        assert sum(record["probabilities"].values()) == pytest.approx(1, abs=1e-3)
        expected_rotations = 1 if question.step == "pubmedqa_labeled" else len(question.options)
        assert len(record.get("rotations", [None])) == expected_rotations
    assert (out / "reliability.png").read_bytes().startswith(b"\x89PNG")
    assert (out / "accuracy.png").read_bytes().startswith(b"\x89PNG")

    def asked_again(*args, **kwargs):
        raise AssertionError("a finished suite was asked again")

    monkeypatch.setattr(runner, "loglik_records", asked_again)
    monkeypatch.setattr(runner, "loglik_many", asked_again)
    assert cli.main(argv) == 0, "resumed: every answer is already in results.json"


def test_few_shot_run_from_the_train_split(studio, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(commands, "Studio", lambda: studio)
    exam = BUNDLED_SUITE / "medmcqa_validation.jsonl"
    argv = ["eval", "--exam", str(exam), "--variant", "tiny", "--prompt", "harness", "--shots", "2", "--limit", "2"]
    assert cli.main([*argv, "--output", str(tmp_path / "shots")]) == 0
    assert "2-shot accuracy, harness prompts" in capsys.readouterr().out
    run = json.loads((tmp_path / "shots" / "results.json").read_text())["runs"]["tiny | loglik"]
    assert run["settings"]["shots"] == 2
    for record in run["records"].values():
        assert record["prompt"].count("Question: ") == 3 and record["prompt"].startswith("Question: Which blood cells")
    assert cli.main([*argv[:-4], "--shots", "4", "--output", str(tmp_path / "more")]) == 2
    assert "4 few-shot examples asked for task medmcqa_validation, but its pool has 3" in capsys.readouterr().err


def test_acc_norm_divides_by_the_bytes_of_the_choice(studio):
    exam, _ = load_suite(BUNDLED_SUITE)
    question = next(q for q in exam.questions if q.step == "pubmedqa_labeled")
    records, errors = loglik_records(studio, question, ["tiny"], style=PromptStyle("harness", "pubmedqa"))
    record = records["tiny"]
    assert not errors and record["response"] in ("yes", "no", "maybe")
    per_byte = {letter: value / len(question.options[letter]) for letter, value in record["loglik"].items()}
    assert record["parsed_norm"] == max(per_byte, key=per_byte.get)
    assert record["parsed"] == max(record["loglik"], key=record["loglik"].get)


def test_evaluate_tab_shows_the_suite_and_its_statistics(studio, tmp_path, monkeypatch):
    import gradio as gr

    from ui.tabs import evaluate as tab

    monkeypatch.setattr(tab, "default_output", lambda exam: tmp_path / exam.name)
    with gr.Blocks():
        evaluate_tab = tab.build_evaluate_tab(studio, RateLimiter(None))
    request = SimpleNamespace(client=None, session_hash="session")
    *_, results = evaluate_tab.evaluate(["tiny", "tiny-lora-0"], tab.SUITE, None, tab.HARNESS, 1, request)
    text = results[evaluate_tab.view.table]
    assert "| medmcqa_validation | MedMCQA (cop 0-3: the Hugging Face release) | 1 |" in text
    assert "McNemar" in text and "| tiny · loglik | tiny-lora-0 · loglik | 7 |" in text and "Brier" in text
