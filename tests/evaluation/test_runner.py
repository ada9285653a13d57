"""Both scoring modes, resuming, held-out loss, the CLI and the Evaluate tab, on tiny random LLaMAs.

``tiny-c`` is the tiny model trained for a few steps to continue every exam prompt with " C", so
the test knows which option it must find most likely (loglik) and write first (generate).
"""

import json
import os
from dataclasses import replace
from types import SimpleNamespace

import pytest

from medalpaca_core import cli
from medalpaca_core.engine import Studio
from medalpaca_core.evaluation import (
    BUNDLED_EXAM,
    EvalConfig,
    GenerateConfig,
    commands,
    load_exam,
    results,
    run_evaluation,
    runner,
)
from medalpaca_core.evaluation.generate import RETRY_SAMPLING
from medalpaca_core.evaluation.loglik import loglik_records
from medalpaca_core.evaluation.perplexity import load_pairs, variant_loss
from medalpaca_core.evaluation.prompt import exam_parts
from medalpaca_core.evaluation.results import ResultsError, atomic_write
from medalpaca_core.generation.settings import GenerationSettings
from medalpaca_core.models.manager import ModelManager
from medalpaca_core.models.registry import UnavailableVariantError, Variant
from medalpaca_core.serving.ratelimit import RateLimiter
from medalpaca_core.text.prompts import MAX_QUESTION_CHARS, render
from medalpaca_core.text.records import QAPair
from tests.tiny import build_tiny_llama, train_tiny

EXAM = load_exam(BUNDLED_EXAM)
TRAINED_ON = [q for q in EXAM.questions if q.step == "step1"][:8]  # the other steps are held out


@pytest.fixture(scope="session")
def tiny_c_dir(tmp_path_factory, tiny_dir):
    """The tiny model, trained until " C" follows the paper's prompt (well under a second of Adam)."""

    def loss(model, tokenizer):
        import torch

        rows = [tokenizer(render("medalpaca", exam_parts(q)))["input_ids"] for q in TRAINED_ON]
        width = max(len(ids) for ids in rows)
        ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(r)) + r for r in rows])
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        target = torch.tensor(tokenizer(" C", add_special_tokens=False)["input_ids"] * len(rows))
        logits = model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits
        return torch.nn.functional.cross_entropy(logits[:, -1], target)

    return train_tiny(tiny_dir, tmp_path_factory.mktemp("tiny-c") / "tiny-c", loss, steps=15)


@pytest.fixture
def studio(tiny_registry, tiny_c_dir):
    tiny_registry.add(Variant(id="tiny-c", label="trained to answer C", base=str(tiny_c_dir), dtype="float32"))
    return Studio(tiny_registry, ModelManager(device="cpu"))


def asked(limit):
    return EXAM.limited(limit)


def test_loglik_picks_the_option_the_model_was_trained_to_prefer(studio):
    held_out = [q for q in asked(3).questions if q.step != "step1"]
    for question in held_out:
        records, errors = loglik_records(studio, question, ["tiny-c"])
        record = records["tiny-c"]
        assert errors == {} and record["parsed"] == "C" and record["response"] == "C"
        assert record["correct"] == (question.answer == "C")
        assert max(record["scores"], key=record["scores"].get) == "C"
        assert record["scores"]["C"] > max(v for k, v in record["scores"].items() if k != "C") + 1


@pytest.mark.parametrize("choice", ["letter", "text"])
def test_mixed_adapter_batch_equals_each_variant_alone(studio, choice):
    """One forward pass for base, two adapters and another template (other prompt length, left padding)."""
    question = EXAM.questions[20]
    ids = ["tiny", "tiny-lora-0", "tiny-lora-1", "tiny-qa"]
    together, errors = loglik_records(studio, question, ids, choice)
    assert errors == {}
    for ident in ids:
        alone = loglik_records(studio, question, [ident], choice)[0][ident]
        assert alone["scores"] == pytest.approx(together[ident]["scores"], abs=2e-4), ident
    assert together["tiny"]["scores"] != together["tiny-lora-0"]["scores"] != together["tiny-lora-1"]["scores"]
    assert together["tiny-qa"]["prompt"].startswith("Question: ")


def test_generate_mode_end_to_end_with_batching_and_quantized_groups(studio, tmp_path):
    one_token = GenerateConfig(  # tiny-c's first token is " C"; what follows is noise
        first=GenerationSettings(max_new_tokens=1),
        retry=replace(RETRY_SAMPLING, max_new_tokens=1, min_new_tokens=1),
        retries=1,
    )
    config = EvalConfig(modes=("generate",), limit=1, generate=one_token)
    outcome = run_evaluation(studio, ["tiny-c", "tiny", "tiny-lora-0", "tiny-nf4"], EXAM, tmp_path, config)
    document = json.loads((tmp_path / "results.json").read_text())
    trained = document["runs"]["tiny-c | generate"]["records"]
    assert [r["parsed"] for r in trained.values()] == ["C", "C", "C"]
    assert outcome.scores[("tiny-c", "generate")]["all"].parse_rate == 1.0
    for record in trained.values():
        assert record["response"] == "C" and record["attempts"] == ["C"]
        assert record["prompt"].endswith("The Answer to the question is:")
    untrained = document["runs"]["tiny | generate"]["records"].values()
    assert all(1 <= len(r["attempts"]) <= 2 for r in untrained), "at most one retry was configured"
    assert set(document["runs"]) == {f"{v} | generate" for v in ["tiny-c", "tiny", "tiny-lora-0", "tiny-nf4"]}
    assert (tmp_path / "accuracy.png").read_bytes().startswith(b"\x89PNG")
    markdown = (tmp_path / "results.md").read_text()
    assert "| tiny-c | generate |" in markdown and "The paper's numbers (published, not measured here)" in markdown
    assert "| MedAlpaca 13b | medalpaca-13b | 0.473 | 0.477 | 0.602 |" in markdown


class PowerCut(Exception):
    """The run stops half-way, as when a machine goes down."""


def test_interrupted_run_resumes_without_asking_again(studio, tmp_path, monkeypatch):
    config = EvalConfig(modes=("loglik",), limit=2)
    variants = ["tiny", "tiny-lora-0"]
    calls = []
    original, per_pass = runner.loglik_many, runner.QUESTIONS_PER_PASS

    def interrupted(studio, asked, variant_ids, *settings):
        calls.extend(question.key for question, _ in asked)
        if len(calls) == 4:
            raise PowerCut
        return original(studio, asked, variant_ids, *settings)

    monkeypatch.setattr(runner, "QUESTIONS_PER_PASS", 1)  # one question a pass: the cut falls between two
    monkeypatch.setattr(runner, "loglik_many", interrupted)
    with pytest.raises(PowerCut):
        run_evaluation(studio, variants, EXAM, tmp_path / "run", config)
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert [len(run["records"]) for run in saved["runs"].values()] == [3, 3]

    calls.clear()
    resumed = run_evaluation(studio, variants, EXAM, tmp_path / "run", config)
    assert calls == ["step2/2", "step3/1", "step3/2"], "only the unanswered questions are asked"
    monkeypatch.setattr(runner, "loglik_many", original)
    monkeypatch.setattr(runner, "QUESTIONS_PER_PASS", per_pass)
    fresh = run_evaluation(studio, variants, EXAM, tmp_path / "fresh", config)
    assert {k: v["all"].as_dict() for k, v in resumed.scores.items()} == {
        k: v["all"].as_dict() for k, v in fresh.scores.items()
    }

    shorter = run_evaluation(studio, variants, EXAM, tmp_path / "run", EvalConfig(modes=("loglik",), limit=1))
    assert shorter.scores[("tiny", "loglik")]["all"].n == 3
    kept = json.loads((tmp_path / "run" / "results.json").read_text())
    assert [len(run["records"]) for run in kept["runs"].values()] == [6, 6], "finished answers are never dropped"


def test_results_of_another_exam_or_setting_are_refused_not_overwritten(studio, tmp_path):
    folder = tmp_path / "run"
    run_evaluation(studio, ["tiny"], EXAM, folder, EvalConfig(modes=("loglik",), limit=1))
    before = (folder / "results.json").read_bytes()
    with pytest.raises(ResultsError, match="other settings"):
        run_evaluation(studio, ["tiny"], EXAM, folder, EvalConfig(modes=("loglik",), limit=1, choice="text"))
    other = load_exam(BUNDLED_EXAM / "step1.json")
    with pytest.raises(ResultsError, match="another exam"):
        run_evaluation(studio, ["tiny"], other, folder, EvalConfig(modes=("loglik",), limit=1))
    assert (folder / "results.json").read_bytes() == before
    (folder / "results.json").write_text('{"format": "medalpaca-studio/usmle-eval/1", "exam"')
    with pytest.raises(ResultsError, match="unreadable"):
        run_evaluation(studio, ["tiny"], EXAM, folder, EvalConfig(modes=("loglik",), limit=1))


def test_a_failed_write_leaves_the_previous_results(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    atomic_write(path, b'{"finished": true}')

    def crash(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(results.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, b'{"partial"')
    assert path.read_bytes() == b'{"finished": true}' and os.listdir(tmp_path) == ["results.json"]


def test_a_variant_this_machine_cannot_run_is_refused_before_any_work(studio, tmp_path):
    studio.registry.add(Variant(id="offline-hub", label="h", base="medalpaca/medalpaca-7b"))
    with pytest.raises(UnavailableVariantError, match="nothing was run: offline-hub"):
        run_evaluation(studio, ["tiny", "offline-hub"], EXAM, tmp_path, EvalConfig(modes=("loglik",), limit=1))
    assert not list(tmp_path.iterdir()) and studio.manager.loaded() == []


PAIRS = [
    QAPair("Answer this question truthfully", "What are the symptoms of diabetes?", "Thirst, frequent urination."),
    QAPair("Answer this question truthfully", "Who is at risk for gout?", "Men over forty and people who drink beer."),
    QAPair("Answer this question truthfully", "What causes scurvy?", "A lack of vitamin C in the diet for months."),
]


def test_heldout_loss_counts_answer_tokens_only_and_ignores_batching(studio):
    one = variant_loss(studio, "tiny", PAIRS, batch_size=1)
    three = variant_loss(studio, "tiny", PAIRS, batch_size=3)
    assert one.tokens == three.tokens and one.mean_loss == pytest.approx(three.mean_loss, rel=1e-4)
    tokenizer = studio.manager.loaded()[0].tokenizer
    assert one.tokens == sum(len(tokenizer(p.output, add_special_tokens=False)["input_ids"]) for p in PAIRS)
    assert 5 < one.mean_loss < 15 and one.perplexity == pytest.approx(2.718281828**one.mean_loss, rel=1e-6)
    adapted = variant_loss(studio, "tiny-lora-0", PAIRS)
    assert adapted.mean_loss != pytest.approx(one.mean_loss, rel=1e-6)
    capped = variant_loss(studio, "tiny", PAIRS, max_answer_tokens=2)
    assert capped.tokens == 6


def test_heldout_data_files(tmp_path):
    path = tmp_path / "meadow.json"
    path.write_text(json.dumps([{"instruction": "", "input": p.input, "output": p.output} for p in PAIRS]))
    assert [p.input for p in load_pairs(path, skip=1, limit=1)] == [PAIRS[1].input]
    assert load_pairs(path)[0].instruction == "Answer this question truthfully"
    jsonl = tmp_path / "meadow.jsonl"
    jsonl.write_text("\n".join(json.dumps({"input": p.input, "output": p.output}) for p in PAIRS))
    assert len(load_pairs(jsonl)) == 3
    path.write_text(json.dumps([{"input": "q"}]))
    with pytest.raises(ValueError, match=r"meadow\.json, record 0: missing key 'output'"):
        load_pairs(path)
    path.write_text(json.dumps([{"input": "q", "output": " "}, {"input": "q2", "output": "a"}]))
    with pytest.raises(ValueError, match=r"meadow\.json, record 0: 'output' is empty"):
        load_pairs(path)
    assert [p.input for p in load_pairs(path, skip_malformed=True)] == ["q2"], "the fine-tuning reader's rule"
    with pytest.raises(ValueError, match="no records left after skipping 5 of 3"):
        load_pairs(jsonl, skip=5)


def test_cli_eval_and_perplexity(studio, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(commands, "Studio", lambda: studio)
    argv = ["eval", "--variant", "tiny-c", "--mode", "loglik", "--limit", "1", "--output", str(tmp_path / "out")]
    assert cli.main(argv) == 0
    printed = capsys.readouterr()
    assert "| tiny-c | loglik |" in printed.out and "results.json" in printed.err
    data = tmp_path / "meadow.json"
    data.write_text(json.dumps([{"instruction": p.instruction, "input": p.input, "output": p.output} for p in PAIRS]))
    assert cli.main(["perplexity", "--variant", "tiny", "--variant", "tiny-c", "--data", str(data)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| tiny")]
    assert len(lines) == 2
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "step1.json").write_text("[]")
    assert cli.main(["eval", "--variant", "tiny", "--exam", str(tmp_path / "bad")]) == 2
    assert "step1.json: expected a non-empty JSON list" in capsys.readouterr().err


def test_evaluate_tab_runs_the_same_evaluation(studio, tmp_path, monkeypatch):
    import gradio as gr

    from ui.tabs import evaluate as tab

    monkeypatch.setattr(tab, "default_output", lambda exam: tmp_path / exam.name)
    monkeypatch.setenv("MEDALPACA_HOME", str(tmp_path / "home"))
    with gr.Blocks():
        evaluate_tab = tab.build_evaluate_tab(studio, RateLimiter(None))
    request = SimpleNamespace(client=None, session_hash="session")
    view = evaluate_tab.view

    def run(*inputs):
        return list(evaluate_tab.evaluate(*inputs, request))  # progress updates, then the results

    *updates, results = run(["tiny-c"], tab.SAMPLE, None, "loglik", 1)
    text, chart, results_file = (results[component] for component in view.outputs)
    assert chart.visible and chart.value["path"].endswith("accuracy.png")  # hidden until there is one
    assert "| tiny-c | loglik |" in text and results_file.endswith("results.json")
    assert str(tmp_path) not in chart.value["path"], "Gradio is handed copies in the temporary folder"
    assert all(set(update) == {view.table} for update in updates), "progress leaves the chart and the file as they are"
    assert "Question 3 of 3 done (loglik · step3, question 1)" in updates[-1][view.table]
    upload = tmp_path / "upload"
    upload.mkdir()
    (upload / "medqa.jsonl").write_text(
        json.dumps({"question": "Which vitamin prevents scurvy?", "options": {"A": "C", "B": "D"}, "answer_idx": "A"})
    )
    text = run(["tiny"], tab.UPLOAD, [str(upload / "medqa.jsonl")], "loglik", None)[-1][view.table]
    assert "medqa (n=1)" in text
    with pytest.raises(gr.Error, match="Upload an exam"):
        run(["tiny"], tab.UPLOAD, [], "loglik", None)
    with pytest.raises(gr.Error, match=r"step1\.json: its solutions file step1_solutions\.json is missing"):
        run(["tiny"], tab.UPLOAD, [str(BUNDLED_EXAM / "step1.json")], "loglik", None)


PASSAGE = "Sauna use, sometimes referred to as sauna bathing, is characterized by short-term passive exposure to heat. "


def mmlu_csv(path, short: int, long: int) -> list[int]:
    """A header-less MMLU CSV (question,A,B,C,D,answer), as the benchmark ships: ``short`` ordinary questions, then
    ``long`` with a ~4,800-character passage (as MMLU college medicine's); returns the long ones' row numbers."""
    import csv

    rows = [[f"Which organ makes insulin? ({n})", "Pancreas", "Liver", "Spleen", "Heart", "A"] for n in range(short)]
    passage = PASSAGE * 45  # ~4,800 characters
    rows += [[f"{passage}What does sauna use do? ({n})", "Warms", "Cools", "Nothing", "Harm", "A"] for n in range(long)]
    with path.open("w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows(rows)
    return list(range(short + 1, short + long + 1))


def test_cli_scores_every_question_that_fits_and_skips_the_others_with_reasons(studio, tmp_path, monkeypatch, capsys):
    """The command line has no character cap, only the model's context window (512 for the tiny model): the five
    passages do not fit it, so each is skipped with its id and why, and the six others are scored."""
    monkeypatch.setattr(commands, "Studio", lambda: studio)
    exam, out = tmp_path / "college_medicine_test.csv", tmp_path / "out"
    long = mmlu_csv(exam, short=6, long=5)
    assert cli.main(["eval", "--variant", "tiny", "--mode", "loglik", "--exam", str(exam), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| tiny | loglik |" in printed and "Skipped (5):" in printed
    for number in long:
        assert f"- mmlu_college_medicine/{number}: prompt and longest option are " in printed
        assert "the context window of tiny is 512: the prompt would have to be cut" in printed
    document = json.loads((out / "results.json").read_text())
    assert len(document["runs"]["tiny | loglik"]["records"]) == 6
    assert set(document["skipped"]) == {f"mmlu_college_medicine/{number}" for number in long}


def test_cli_generate_mode_scores_questions_over_the_pages_cap(studio, tiny_registry, tiny_dir, tmp_path, monkeypatch):
    """Generate mode has no character cap either: the ~4,800-character passages are scored by a model whose context
    window holds them, and skipped one by one (the rest scored) by the tiny one, whose 512 tokens do not."""
    wide = build_tiny_llama(tmp_path / "wide", str(tiny_dir), max_position_embeddings=2048)
    tiny_registry.add(Variant(id="tiny-wide", label="tiny, 2,048 tokens", base=str(wide), dtype="float32"))
    monkeypatch.setattr(commands, "Studio", lambda: studio)
    exam = tmp_path / "college_medicine_test.csv"
    long = mmlu_csv(exam, short=2, long=2)
    assert len(load_exam(exam).questions[-1].text) > MAX_QUESTION_CHARS
    for variant in ("tiny-wide", "tiny"):
        arguments = ["--variant", variant, "--mode", "generate", "--exam", str(exam), "--max-new-tokens", "4"]
        assert cli.main(["eval", *arguments, "--output", str(tmp_path / variant)]) == 0
        document = json.loads((tmp_path / variant / "results.json").read_text())
        scored = set(document["runs"][f"{variant} | generate"]["records"])
        skipped = set(document["skipped"])
        if variant == "tiny-wide":
            assert len(scored) == 4 and not skipped, (scored, skipped)
        else:
            assert len(scored) == 2 and skipped == {f"mmlu_college_medicine/{n}" for n in long}, (scored, skipped)
            assert all("context window of 512 tokens" in why for why in document["skipped"].values()), document


def test_the_page_skips_questions_over_its_cap_and_scores_the_rest(studio, tmp_path, monkeypatch):
    """A visitor's upload with one 5,000-character question among valid ones: that one is skipped, listed with its
    reason and counted with the excluded questions; the others are scored."""
    import gradio as gr

    from ui.tabs import evaluate as tab

    monkeypatch.setattr(tab, "default_output", lambda exam: tmp_path / exam.name)
    monkeypatch.setenv("MEDALPACA_HOME", str(tmp_path / "home"))
    with gr.Blocks():
        evaluate_tab = tab.build_evaluate_tab(studio, RateLimiter(None))
    upload = tmp_path / "medqa.jsonl"
    questions = [("Which vitamin prevents scurvy?", "C"), ("x" * 5_000 + "?", "D"), ("Which organ makes insulin?", "C")]
    upload.write_text(
        "\n".join(json.dumps({"question": q, "options": {"A": "B12", "B": a}, "answer_idx": "B"}) for q, a in questions)
    )
    request = SimpleNamespace(client=None, session_hash="session")
    results = list(evaluate_tab.evaluate(["tiny"], tab.UPLOAD, [str(upload)], "loglik", None, request))[-1]
    text = results[evaluate_tab.view.table]
    assert "medqa (n=2)" in text
    assert "**medqa/2 skipped**: question and options are 5,013 characters; the limit is 4,000" in text
    document = json.loads(next((tmp_path / "home").rglob("results.json")).read_text())  # the upload's results
    assert document["exam"]["excluded"] == {"medqa": [2]} and list(document["skipped"]) == ["medqa/2"]
    exam = load_exam(upload)
    assert len(exam.questions) == 3 and len(exam.within().questions) == 2, "only the page caps the length"
