"""Exam files: both formats, the bundled sample, image exclusion, and every kind of bad input."""

import json

import pytest

from medalpaca_core.evaluation import exams
from medalpaca_core.evaluation.exams import BUNDLED_EXAM, ExamError
from medalpaca_core.evaluation.loading import load_exam
from medalpaca_core.evaluation.prompt import exam_parts
from medalpaca_core.models.paper import load_paper_table
from medalpaca_core.models.registry import read_registry_file
from medalpaca_core.runtime.paths import REGISTRY_FILE
from medalpaca_core.text.prompts import render

QUESTIONS = [
    {"question": "Which vitamin deficiency causes scurvy?", "options": {"A": "Vitamin C", "B": "Vitamin D"}, "id": 7},
    {"question": "Which organ makes insulin?", "options": {"A": "Liver", "B": "Pancreas", "C": "Spleen"}},
    {"question": "Which cell makes surfactant? (see image)", "options": {"A": "Type I", "B": "Type II"}},
]


def write_step(folder, name="step1", questions=QUESTIONS, solutions=None, images=None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(questions), encoding="utf-8")
    if solutions is not False:
        solutions = solutions or {str(n): "B" if n > 1 else "A" for n in range(1, len(questions) + 1)}
        (folder / f"{name}_solutions.json").write_text(json.dumps(solutions), encoding="utf-8")
    if images is not None:
        (folder / f"{name}_images.json").write_text(json.dumps(images), encoding="utf-8")
    return folder / f"{name}.json"


def test_bundled_sample_exam():
    exam = load_exam(BUNDLED_EXAM)
    assert exam.steps == ["step1", "step2", "step3"] and len(exam.questions) >= 40
    assert all(q.answer in q.options and len(q.options) == 5 for q in exam.questions)
    assert "not the real exam" in (BUNDLED_EXAM.parent / "README.md").read_text(encoding="utf-8").lower()
    assert len({q.answer for q in exam.questions}) == 5, "answers spread over the letters"
    assert [len(exam.limited(2).questions), len(exam.limited(None).questions)] == [6, len(exam.questions)]


def test_self_assessment_format_with_image_exclusion(tmp_path):
    exam = load_exam(write_step(tmp_path / "usmle", images=["3"]).parent)
    assert [(q.key, q.answer) for q in exam.questions] == [("step1/1", "A"), ("step1/2", "B")]
    assert exam.excluded == {"step1": (3,)} and exam.questions[1].options["B"] == "Pancreas"


def test_medqa_jsonl_format(tmp_path):
    path = tmp_path / "medqa_test.jsonl"
    lines = [
        {"question": "Which vitamin prevents scurvy?", "options": {"A": "C", "B": "D"}, "answer_idx": "A"},
        {"question": "Which organ makes insulin?", "options": {"A": "Liver", "B": "Pancreas"}, "answer_idx": "B"},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n", encoding="utf-8")
    exam = load_exam(path)
    assert exam.name == "medqa_test" and [q.key for q in exam.questions] == ["medqa_test/1", "medqa_test/2"]
    assert exam.questions[1].answer == "B"


def test_fingerprint_changes_with_answers(tmp_path):
    first = load_exam(write_step(tmp_path / "a"))
    second = load_exam(write_step(tmp_path / "b", solutions={"1": "A", "2": "C", "3": "B"}))
    assert first.fingerprint == load_exam(tmp_path / "a").fingerprint != second.fingerprint


def test_the_paper_prompt():
    question = load_exam(BUNDLED_EXAM).questions[0]
    prompt = render("medalpaca", exam_parts(question))
    assert "### Instruction:\nAnswer this multiple choice question.\n\n### Input:\n" + question.text in prompt
    assert "".join(f"\n{k}: {v}" for k, v in question.options.items()) + "\n\n### Response:" in prompt
    assert prompt.endswith("### Response:\nThe Answer to the question is:")


def test_paper_table_is_sourced_and_linked_to_the_registry():
    table = load_paper_table()
    assert "kbressem/medAlpaca" in table.source and "2304.08247" in table.source
    assert table.for_variant("medalpaca-13b").scores == {"step1": 0.473, "step2": 0.477, "step3": 0.602}
    registry_ids = {variant.id for variant in read_registry_file(REGISTRY_FILE)}
    assert {row.variant for row in table.rows if row.variant} <= registry_ids


def bad(tmp_path, name, content: bytes):
    path = tmp_path / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: write_step(d, solutions=False), r"step1\.json: its solutions file step1_solutions\.json is missing"),
        (
            lambda d: write_step(d, solutions={"1": "A", "2": "F", "3": "B"}),
            r"solutions\.json, question 2: .*'F'",
        ),
        (lambda d: write_step(d, solutions={"1": "A", "3": "B"}), r"step1\.json, question 2: no solution"),
        (
            lambda d: write_step(d, solutions={"1": "A", "2": "B", "3": "B", "9": "A"}),
            r"question 9, but step1\.json has only 3",
        ),
        (lambda d: bad(d, "step1.json", b""), r"step1\.json is empty"),
        (lambda d: bad(d, "step1.json", b"  \n"), r"step1\.json is empty"),
        (lambda d: bad(d, "step1.json", b'[{"question": "x",'), r"step1\.json is not valid JSON: .* line 1"),
        (lambda d: bad(d, "step1.json", b"[]"), r"step1\.json: expected a non-empty JSON list"),
        (lambda d: bad(d, "step1.json", '[{"question": "caf\u00e9"}]'.encode("latin-1")), r"not valid UTF-8.*0xe9"),
        (lambda d: write_step(d, questions=[{"question": "x", "options": {"a": "1", "B": "2"}}]), r"question 1: .*'a'"),
        (lambda d: write_step(d, questions=[*QUESTIONS[:1], {"options": {"A": "1"}}]), r"question 2: 'question'"),
        (lambda d: write_step(d, questions=[QUESTIONS[0], "text"]), r"question 2: expected an object"),
        (lambda d: write_step(d, images=["one"]), r"step1_images\.json: expected a JSON list"),
        (lambda d: write_step(d, name="exam"), r"must be named stepN\.json"),
        (
            lambda d: bad(d, "q.jsonl", b'{"question": "x", "options": {"A": "1", "B": "2"}, "answer_idx": "C"}'),
            r"q\.jsonl, line 1 \(answer_idx\): the solution 'C'",
        ),
        (lambda d: bad(d, "q.jsonl", b'{"question": "x"}\nnot json'), r"q\.jsonl, line 2: not valid JSON"),
        (
            lambda d: bad(d, "q.jsonl", b'{"question": "x"}'),
            r"(?s)q\.jsonl: not a known benchmark format .*MedMCQA: question, opa",
        ),
        (lambda d: bad(d, "q.jsonl", b"\n{oops}\n"), r"q\.jsonl, line 2: not valid JSON"),
        (lambda d: d / "missing.json", r"no such exam file or folder"),
    ],
)
def test_bad_input_is_named(tmp_path, make, message):
    with pytest.raises(ExamError, match=message):
        load_exam(make(tmp_path))


def test_folder_without_exam_and_oversized_file(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExamError, match=r"no stepN\.json or data file"):
        load_exam(tmp_path / "empty")
    path = write_step(tmp_path / "big")
    monkeypatch.setattr(exams, "MAX_EXAM_BYTES", 100)
    with pytest.raises(ExamError, match=r"step1\.json is .* MB; the limit"):
        load_exam(path)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"[" * 50_000 + b"]" * 50_000, "line 1 is not usable exam data: RecursionError"),
        (b'{"question": "q \\udc80", "options": {"A": "a", "B": "b"}, "answer_idx": "A"}', "UnicodeEncodeError"),
        (b'{"question": "q", "options": {"A": "a", "B": "b"}, "answer_idx": ' + b"7" * 5000 + b"}", "ValueError"),
    ],
)
def test_jsonl_exams_that_json_accepts_but_nothing_else_can_use_are_refused(tmp_path, line, message):
    exam = tmp_path / "hostile.jsonl"
    exam.write_bytes(line + b"\n")
    with pytest.raises(ExamError, match=message):
        load_exam(exam)
