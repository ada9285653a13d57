"""Scoring on hand-checked responses: the letter parser, retries, accuracy arithmetic, intervals."""

from types import SimpleNamespace

import pytest

from medalpaca_core.evaluation.exams import Question
from medalpaca_core.evaluation.generate import GenerateConfig, generate_records
from medalpaca_core.evaluation.scoring import parse_letter, score, score_by_step, wilson_interval
from medalpaca_core.generation.answers import Answer, Stats
from medalpaca_core.models.registry import Registry, Variant

OPTIONS = {"A": "Warfarin", "B": "Heparin", "C": "Clopidogrel", "D": "Ibuprofen", "E": "Aspirin"}


@pytest.mark.parametrize(
    ("response", "letter"),
    [
        ("A: Warfarin", "A"),
        ("B. Heparin", "B"),
        ("E", "E"),
        ("E.", "E"),
        ("D) Ibuprofen", "D"),
        ("(C) Clopidogrel", "C"),
        ("**B**: Heparin", "B"),
        ("  C\n\nThe drug inhibits P2Y12.", "C"),
        ("A Warfarin, because ...", "A"),  # the paper's "letter, space" form, followed by the option
        ("C: Ibuprofen", "C"),  # a clear letter with the wrong text is still that letter
        ("A 56-year-old man takes a daily drug", None),  # an echoed question is not answer A
        ("I think the answer is B", None),  # I is not an option
        ("Answer: B", None),
        ("The answer is C", None),
        ("F: Metformin", None),  # not among the options
        ("c: clopidogrel", None),
        ("", None),
        ("ABC", None),
    ],
)
def test_parse_letter(response, letter):
    assert parse_letter(response, OPTIONS) == letter


def test_wilson_interval_matches_hand_computed_values():
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4) and high == pytest.approx(0.7634, abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def record(step, correct, parsed="A", n_options=5):
    return {"step": step, "correct": correct, "parsed": parsed, "n_options": n_options}


def test_accuracy_arithmetic_counts_unparsed_as_wrong():
    records = [
        record("step1", True),
        record("step1", False),
        record("step1", False, parsed=None),
        record("step2", True, n_options=4),
        record("step2", True, n_options=4),
    ]
    scores = score_by_step(records)
    assert list(scores) == ["step1", "step2", "all"]
    assert (scores["step1"].n, scores["step1"].correct) == (3, 1)
    assert scores["step1"].accuracy == pytest.approx(1 / 3)
    assert scores["step1"].parse_rate == pytest.approx(2 / 3)
    assert scores["step2"].accuracy == 1.0 and scores["step2"].chance == 0.25
    assert scores["all"].accuracy == pytest.approx(3 / 5)
    assert scores["all"].chance == pytest.approx((3 * 0.2 + 2 * 0.25) / 5)
    assert score([]).n == 0 and score([]).accuracy == 0.0
    assert scores["all"].as_dict()["ci95"] == [round(x, 4) for x in wilson_interval(3, 5)]


class ScriptedStudio:
    """Stands in for the studio: each variant answers from a script, one entry per attempt."""

    def __init__(self, scripts):
        self.scripts = {variant: list(lines) for variant, lines in scripts.items()}
        self.registry = Registry([Variant(id=v, label=v, base="unused") for v in scripts])
        self.calls = []

    def variant(self, variant_id):
        return self.registry.get(variant_id)

    def acquire(self, variant):
        return SimpleNamespace(tokenizer=None), "__base__"

    def stream_requests(self, requests, settings, cancel=None):
        self.calls.append(([r.variant_id for r in requests], settings))
        answers = {}
        for request in requests:
            text = self.scripts[request.variant_id].pop(0)
            stats = Stats(1, 1, 0.1, 0.1, 1, "none", False, "eos")
            answers[request.variant_id] = Answer(request.variant_id, text, "done", None, stats)
        yield answers


QUESTION = Question("step1", 1, "Which drug inhibits platelet cyclooxygenase irreversibly?", OPTIONS, "E")


def test_unparseable_answers_are_retried_with_sampling_then_count_as_wrong():
    studio = ScriptedStudio(
        {
            "quick": ["E: Aspirin"],
            "late": ["hmm", "A 56-year-old man", "B: Heparin"],
            "never": ["no idea"] * 6,
        }
    )
    records, errors = generate_records(studio, QUESTION, ["quick", "late", "never"], GenerateConfig(seed=10))
    assert errors == {}
    assert records["quick"]["correct"] and records["quick"]["attempts"] == ["E: Aspirin"]
    assert records["late"]["parsed"] == "B" and len(records["late"]["attempts"]) == 3 and not records["late"]["correct"]
    assert records["never"]["parsed"] is None and len(records["never"]["attempts"]) == 6
    assert not records["never"]["correct"]
    asked = [variants for variants, _ in studio.calls]
    assert asked == [["quick", "late", "never"], ["late", "never"], ["late", "never"], *[["never"]] * 3]
    first, *retries = [settings for _, settings in studio.calls]
    assert not first.do_sample
    assert all(s.do_sample and s.temperature == 0.4 for s in retries)
    assert [s.seed for s in retries] == [11, 12, 13, 14, 15]
    assert records["quick"]["prompt"].endswith("### Response:\nThe Answer to the question is:")
    assert "\nE: Aspirin\n" in records["quick"]["prompt"]


def test_failed_variant_is_reported_not_scored():
    studio = ScriptedStudio({"ok": ["E"], "broken": ["x"]})
    original = studio.stream_requests

    def failing(requests, settings, cancel=None):
        for answers in original(requests, settings, cancel):
            yield {**answers, "broken": Answer("broken", status="error", error="could not load")}

    studio.stream_requests = failing
    records, errors = generate_records(studio, QUESTION, ["ok", "broken"], GenerateConfig())
    assert list(records) == ["ok"] and errors == {"broken": "could not load"}


def test_stored_settings_are_differences_from_the_defaults():
    """A setting added to GenerationSettings later must not make older results unresumable."""
    stored = GenerateConfig().as_dict()
    assert stored["first"] == {"max_new_tokens": 32}
    assert stored["retry"] == {"max_new_tokens": 32, "min_new_tokens": 2, "temperature": 0.4, "top_p": 0.9, "top_k": 50}
