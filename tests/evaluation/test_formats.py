"""Benchmark formats, harness prompts, few-shot pools and the statistics, without a model."""

import json

import pytest

from medalpaca_core.evaluation import formats, harness, statistics
from medalpaca_core.evaluation.exams import ExamError, Question
from medalpaca_core.evaluation.formats import read_task_file
from medalpaca_core.evaluation.loading import load_exam
from medalpaca_core.evaluation.loglik import option_probabilities, rotated
from medalpaca_core.evaluation.shots import ShotPool, load_pool
from medalpaca_core.evaluation.suite import BUNDLED_SUITE, load_suite

MEDMCQA = {"question": "Which vitamin prevents scurvy?", "opa": "C", "opb": "D", "opc": "K", "opd": "A"}


def jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_bundled_suite_has_every_format_named():
    exam, pool = load_suite(BUNDLED_SUITE)
    described = {step: info.description for step, info in exam.tasks.items()}
    assert described == {
        "mmlu_clinical_knowledge": "MMLU",
        "medmcqa_validation": "MedMCQA (cop 0-3: the Hugging Face release)",
        "medqa_4options_test": "MedQA (4 options)",
        "medqa_5options_test": "MedQA (5 options)",
        "mmlu_anatomy": "MMLU",
        "mmlu_medical_genetics": "MMLU",
        "pubmedqa_labeled": "PubMedQA (labelled; the abstract is the context)",
    }
    assert all(q.answer in q.options for q in exam.questions)
    assert {task for task in pool.by_task} == {"medmcqa", "mmlu_clinical_knowledge"}, "the _dev/_train files"
    assert "not copies" in (BUNDLED_SUITE / "README.md").read_text(encoding="utf-8")


def test_medmcqa_cop_base_is_told_apart_per_file(tmp_path):
    hf = read_task_file(jsonl(tmp_path / "hf.jsonl", [{**MEDMCQA, "cop": 0}, {**MEDMCQA, "question": "q2", "cop": 3}]))
    original = read_task_file(jsonl(tmp_path / "orig.jsonl", [{**MEDMCQA, "cop": 1}, {**MEDMCQA, "cop": 4}]))
    assert [q.answer for q in hf.tasks["hf"]] == ["A", "D"] and "0-3" in hf.description
    assert [q.answer for q in original.tasks["orig"]] == ["A", "D"] and "1-4: the original" in original.description
    with pytest.raises(ExamError, match=r"both\.jsonl: cop has both 0 and 4"):
        read_task_file(jsonl(tmp_path / "both.jsonl", [{**MEDMCQA, "cop": 0}, {**MEDMCQA, "cop": 4}]))


def test_pubmedqa_and_mmlu_shapes(tmp_path):
    hf_pubmedqa = {"pubid": 1, "question": "Q?", "context": {"contexts": ["One.", "Two."]}, "final_decision": "Maybe"}
    question = read_task_file(jsonl(tmp_path / "pqa.jsonl", [hf_pubmedqa])).tasks["pqa"][0]
    assert (question.context, question.options, question.answer) == (
        "One.\nTwo.",
        {"A": "yes", "B": "no", "C": "maybe"},
        "C",
    )
    mmlu = {"question": "Q?", "subject": "anatomy", "choices": ["a", "b", "c", "d"], "answer": 3}
    assert read_task_file(jsonl(tmp_path / "m.jsonl", [mmlu])).tasks["mmlu_anatomy"][0].answer == "D"
    (tmp_path / "virology_test.csv").write_text('Q one?,a,b,c,d,B\n"Q, two?",a,b,c,d,C\n', encoding="utf-8")
    csv = read_task_file(tmp_path / "virology_test.csv").tasks["mmlu_virology"]
    assert [(q.text, q.answer, q.subject) for q in csv] == [("Q one?", "B", "virology"), ("Q, two?", "C", "virology")]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{**MEDMCQA, "cop": 7}], r"x\.jsonl, line 1: cop 7 is out of range \(0-3\)"),
        (
            [{**MEDMCQA, "cop": 1, "id": "a"}, {**MEDMCQA, "cop": 2, "id": "a"}],
            r"line 2: id 'a' is also the id of record 1",
        ),
        ([{**MEDMCQA, "cop": 1}, {"question": "q", "choices": ["a", "b"], "answer": 0}], r"line 2: has no 'opa' field"),
        ([{**MEDMCQA, "cop": -1}, {**MEDMCQA, "cop": None}], r"no question could be asked: 2 rows skipped, none left"),
        ([{"question": "q", "final_decision": "perhaps", "contexts": ["c"]}], r"line 1: final_decision 'perhaps'"),
        ([{"question": "q", "choices": ["a", "b"], "answer": "C"}], r"line 1 \(answer\): the solution 'C'"),
    ],
)
def test_bad_rows_are_named(tmp_path, rows, message):
    with pytest.raises(ExamError, match=message):
        read_task_file(jsonl(tmp_path / "x.jsonl", rows))


def test_unaskable_rows_are_skipped_and_counted(tmp_path):
    rows = [
        {**MEDMCQA, "cop": 1},
        {**MEDMCQA, "question": "q2", "cop": -1},
        {**MEDMCQA, "question": "q3", "opb": "", "cop": 2},
    ]
    found = read_task_file(jsonl(tmp_path / "x.jsonl", rows))
    assert len(found.tasks["x"]) == 1
    assert found.skipped == ["line 2: no answer key (cop)", "line 3: 'opb' is empty"]


def test_mixed_formats_in_one_folder_and_huge_files(tmp_path, monkeypatch):
    jsonl(tmp_path / "a.jsonl", [{**MEDMCQA, "cop": 1}])
    jsonl(tmp_path / "b.jsonl", [{"question": "q", "choices": ["a", "b"], "answer": 0, "subject": "anatomy"}])
    with pytest.raises(ExamError, match=r"mixes formats \(a\.jsonl is medmcqa, b\.jsonl is mmlu\).*--suite"):
        load_exam(tmp_path)
    assert set(load_suite(tmp_path)[0].tasks) == {"a", "mmlu_anatomy"}, "the suite takes them as two tasks"
    monkeypatch.setattr(formats, "MAX_DATA_BYTES", 50)
    with pytest.raises(ExamError, match=r"a\.jsonl is 0 MB; the limit for a data file is 0 MB"):
        read_task_file(tmp_path / "a.jsonl")


# The harness's doc_to_text for one document of each task, written out from its task definitions
# (lm_eval/tasks/medqa/preprocess_medqa.py, medmcqa/utils_medmcqa.py, pubmedqa/preprocess_pubmedqa.py,
# mmlu/default/_default_template_yaml + mmlu_anatomy.yaml), not computed by our code.
HARNESS_STRINGS = {
    "medqa": "Question: A 24-year-old woman has heat intolerance. Which is the most likely diagnosis?\n"
    "A. Hashimoto thyroiditis\nB. Graves disease\nC. Subacute thyroiditis\nD. Thyroid lymphoma\nAnswer:",
    "medmcqa": "Question: Which cranial nerve supplies the lateral rectus muscle?\nChoices:\n"
    "A. Oculomotor nerve\nB. Trochlear nerve\nC. Abducens nerve\nD. Facial nerve\nAnswer:",
    "pubmedqa": "Abstract: Adults walked daily.\nPressure fell.\nQuestion: Does walking lower blood pressure?\nAnswer:",
    "mmlu": "The following are multiple choice questions (with answers) about anatomy.\n\n"
    "Which organ stores bile?\nA. Gallbladder\nB. Pancreas\nC. Spleen\nD. Kidney\nAnswer:",
}


def test_harness_prompts_equal_the_harness_strings(tmp_path):
    medqa = {"id": 1, "sent1": "A 24-year-old woman has heat intolerance. Which is the most likely diagnosis?"}
    medqa |= {"ending0": "Hashimoto thyroiditis", "ending1": "Graves disease", "ending2": "Subacute thyroiditis"}
    medqa |= {"ending3": "Thyroid lymphoma", "label": 1}
    medmcqa = {"question": "Which cranial nerve supplies the lateral rectus muscle?", "opa": "Oculomotor nerve"}
    medmcqa |= {"opb": "Trochlear nerve", "opc": "Abducens nerve", "opd": "Facial nerve", "cop": 2}
    pubmedqa = {
        "QUESTION": "Does walking lower blood pressure?",
        "CONTEXTS": ["Adults walked daily.", "Pressure fell."],
    }
    pubmedqa |= {"final_decision": "yes"}
    mmlu = {"question": "Which organ stores bile?", "subject": "anatomy", "answer": 0}
    mmlu |= {"choices": ["Gallbladder", "Pancreas", "Spleen", "Kidney"]}
    for kind, row in {"medqa": medqa, "medmcqa": medmcqa, "pubmedqa": pubmedqa, "mmlu": mmlu}.items():
        found = read_task_file(jsonl(tmp_path / f"{kind}.jsonl", [row]))
        question = next(iter(found.tasks.values()))[0]
        assert found.format == kind
        assert harness.context(question, kind) == HARNESS_STRINGS[kind]
    pubmed_question = read_task_file(tmp_path / "pubmedqa.jsonl").tasks["pubmedqa"][0]
    assert harness.choices(pubmed_question, "pubmedqa") == {"A": "yes", "B": "no", "C": "maybe"}


def test_few_shot_examples_never_contain_the_question_asked(tmp_path):
    exam, pool = load_suite(BUNDLED_SUITE)
    asked = next(q for q in exam.questions if q.step == "medmcqa_validation")
    shots = pool.pick(asked, 3)
    assert [s.step for s in shots] == ["medmcqa_train"] * 3
    text = harness.context(asked, "medmcqa", shots)
    assert text.count("Question: ") == 4 and text.endswith(harness.doc_to_text(asked, "medmcqa"))
    assert f"{harness.doc_to_text(shots[0], 'medmcqa')} {shots[0].answer}\n\n" in text
    leaky = ShotPool.of([asked, *shots], any_task=True)  # the asked question is in the pool: it is passed over
    picked = leaky.pick(asked, 3)
    assert asked not in picked and len(picked) == 3
    assert harness.doc_to_text(asked, "medmcqa") not in harness.context(asked, "medmcqa", picked)[:-10]
    with pytest.raises(ExamError, match=r"4 few-shot examples asked for task medmcqa_validation, but its pool has 3"):
        leaky.pick(asked, 4)
    jsonl(tmp_path / "pool.jsonl", [{**MEDMCQA, "cop": 0}])
    assert load_pool([tmp_path / "pool.jsonl"], any_task=True).pick(asked, 1)[0].text == MEDMCQA["question"]


def test_mcnemar_exact_is_the_two_sided_binomial():
    assert statistics.mcnemar_exact(12, 2) == pytest.approx(2 * (1 + 14 + 91) / 2**14)  # 0.01294
    assert statistics.mcnemar_exact(2, 12) == statistics.mcnemar_exact(12, 2)
    assert statistics.mcnemar_exact(5, 5) == 1.0 and statistics.mcnemar_exact(0, 0) == 1.0
    right = [{"question": f"q{i}", "correct": i < 12} for i in range(20)]
    other = [{"question": f"q{i}", "correct": 12 <= i < 14} for i in range(20)]
    pair = statistics.compare("a", "b", right, other)
    assert (pair.n, pair.a_only, pair.b_only) == (20, 12, 2) and pair.p_value == pytest.approx(0.012939, abs=1e-6)


def record(answer, probabilities, parsed=None, **extra):
    parsed = parsed or max(probabilities, key=probabilities.get)
    return {
        "question": "q",
        "answer": answer,
        "probabilities": probabilities,
        "parsed": parsed,
        "n_options": 4,
        **extra,
    }


def test_brier_and_calibration():
    uniform = record("A", dict.fromkeys("ABCD", 0.25))
    assert statistics.brier_score([uniform]) == pytest.approx(0.75)
    assert statistics.brier_score([record("B", {"A": 0, "B": 1, "C": 0, "D": 0})]) == 0
    sure_and_wrong = [record("B", {"A": 0.9, "B": 0.1, "C": 0, "D": 0})] * 3
    ece, bins = statistics.reliability(sure_and_wrong)
    assert ece == pytest.approx(0.9) and [(b.n, b.accuracy) for b in bins] == [(3, 0.0)]
    assert option_probabilities({"A": 0.0, "B": 0.0}) == {"A": 0.5, "B": 0.5}


def test_a_model_that_always_answers_a_is_flagged():
    answers = "ABCD" * 10
    always_a = [record(a, {"A": 0.7, "B": 0.1, "C": 0.1, "D": 0.1}) for a in answers]
    found = statistics.position_bias(always_a)
    assert found.flagged and found.top == "A" and "answers A 100% of the time (expected 25%)" in found.summary()
    honest = [record(a, {letter: 0.7 if letter == a else 0.1 for letter in "ABCD"}) for a in answers]
    assert not statistics.position_bias(honest).flagged
    question = Question("s", 1, "q", {"A": "one", "B": "two", "C": "three"}, "B")
    assert rotated(question, 1).options == {"A": "two", "B": "three", "C": "one"} and rotated(question, 1).answer == "A"
    rotations = [{"position": "A", "picked": "ABCD"[i], "answer": "ABCD"[(4 - i) % 4]} for i in range(4)]
    rotated_a = [record("A", dict.fromkeys("ABCD", 0.25), rotations=rotations)] * 5
    found = statistics.position_bias(rotated_a)
    assert found.flagged and found.consistency == 0.0 and "same answer under every rotation for 0%" in found.summary()
