"""Cure questions derived from training answers (finetune/cure.py): spans of the answers, training side only."""

from __future__ import annotations

import json

import pytest

from finetune.config import DataConfig
from finetune.cure import condition_of, cure_passage, cure_questions
from finetune.data import prepare, split
from medalpaca_core.models.loading import load_tokenizer
from medalpaca_core.text.records import QAPair, Source, load_records

ASTHMA = QAPair(
    "Answer this question truthfully",
    "What to expect if I have Asthma  (Outlook/Prognosis)?",
    "There is no cure for asthma, although symptoms sometimes improve over time. With proper self management "
    "most people lead normal lives.\nSome outgrow it.",
)
SYPHILIS = QAPair("i", "What to expect if I have Syphilis  (Outlook/Prognosis)?", "Early syphilis can be cured.")
CROHN = QAPair("i", "What causes Crohn%27s disease?", "Genes and the immune system. There is no cure. Diet helps.")
GOUT = QAPair("i", "What to expect if I have Gout  (Outlook/Prognosis)?", "Proper treatment keeps attacks away.")


@pytest.mark.parametrize(
    ("question", "condition"),
    [
        ("What to expect if I have Asthma  (Outlook/Prognosis)?", "Asthma"),
        ("What causes Crohn%27s disease?", "Crohn's disease"),
        ("Who is at highest risk for Behcet%27s syndrome ?", "Behcet's syndrome"),
        ("When to seek urgent medical care when I have Hepatitis A ?", "Hepatitis A"),
        ("What are the symptoms of Gout?", "Gout"),
        ("What is Eczema?", "Eczema"),
        ("How common are side effects of metformin?", None),
    ],
)
def test_condition_of_reads_the_wikidoc_question_templates(question, condition):
    assert condition_of(question) == condition


def test_cure_passage_is_the_cure_sentence_and_the_next_one():
    assert cure_passage(ASTHMA.output) == (
        "There is no cure for asthma, although symptoms sometimes improve over time. With proper self management "
        "most people lead normal lives."
    )
    assert cure_passage(CROHN.output) == "There is no cure. Diet helps."
    assert cure_passage("Avoid salted, cured, and smoked foods. Exercise.") is None, "cured meat is no cure"
    assert cure_passage("Rest and fluids help most people.") is None
    assert cure_passage("It cannot be cured: " + ", ".join(["a long list"] * 60)) is None, "a list the split missed"


def test_cure_questions_ask_both_forms_of_each_curability_answer():
    records = [ASTHMA, SYPHILIS, CROHN, QAPair("i", "What is gout?", "A form of arthritis.")]  # gout: no outlook
    derived = cure_questions(records, copies=2)
    assert len(derived) == 3 * 2 * 2
    assert {r.input for r in derived} == {
        "How to cure Asthma?",
        "Can Asthma be cured?",
        "How to cure Syphilis?",
        "Can Syphilis be cured?",
        "How to cure Crohn's disease?",
        "Can Crohn's disease be cured?",
    }
    for record in derived:
        source = next(r for r in records if condition_of(r.input) and condition_of(r.input) in record.input)
        assert record.output in source.output.replace("\n", " ") and record.instruction == source.instruction
    assert cure_questions(records, copies=0) == []


def test_an_outlook_without_a_cure_sentence_answers_how_to_cure():
    """What the data knows about curing gout is its outlook: that is the answer, never an invented remedy."""
    long_outlook = QAPair("i", "What to expect if I have Lupus  (Outlook/Prognosis)?", "It varies. " * 80)
    derived = cure_questions([GOUT, ASTHMA, long_outlook, CROHN], copies=1)
    assert QAPair("i", "How to cure Gout?", GOUT.output) in derived
    assert [r.input for r in derived if "Gout" in r.input] == ["How to cure Gout?"], "an outlook is no yes or no"
    asthma = [r.output for r in derived if "Asthma" in r.input]
    assert asthma == [cure_passage(ASTHMA.output)] * 2, "the cure sentence wins over the outlook"
    assert not [r for r in derived if "Lupus" in r.input], "an outlook too long to be one answer is left out"


def test_prepare_adds_cure_questions_to_training_only(tmp_path, tiny_dir):
    records = [{"instruction": "i", "input": f"What causes Condition {n}?", "output": f"Cause {n}."} for n in range(40)]
    records += [
        {"instruction": "i", "input": f"What to expect if I have Illness {n}  (Outlook/Prognosis)?", "output": text}
        for n, text in enumerate(["There is no cure. Rest helps.", "It can be cured with surgery.", "It varies."] * 10)
    ]
    path = tmp_path / "records.json"
    path.write_text(json.dumps(records))
    tokenizer = load_tokenizer(str(tiny_dir))
    plain = prepare(DataConfig(sources=[str(path)], cutoff=128), tokenizer)
    asked = prepare(DataConfig(sources=[str(path)], cutoff=128, cure_questions=3), tokenizer)

    train, _ = split(load_records([Source.parse(str(path))], 42, False).pairs, 0.1, 42)
    curable = sum(1 for r in train if "cure" in r.output)
    outlooks = sum(1 for r in train if r.output == "It varies.")
    assert curable and outlooks and plain.cure_questions == 0
    assert asked.cure_questions == (curable * 2 + outlooks) * 3
    assert len(asked.train) == len(plain.train) + asked.cure_questions
    assert asked.validation == plain.validation, "the validation split never gets derived records"
    assert f"{asked.cure_questions} of them cure questions" in asked.summary()


def test_cure_questions_that_find_nothing_say_so(tmp_path, tiny_dir, caplog):
    path = tmp_path / "records.json"
    path.write_text(json.dumps([{"instruction": "i", "input": f"Q{n}?", "output": f"A{n}."} for n in range(20)]))
    data = prepare(DataConfig(sources=[str(path)], cure_questions=3), load_tokenizer(str(tiny_dir)))
    assert data.cure_questions == 0 and "--cure-questions 3 added nothing" in caplog.text
