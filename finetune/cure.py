"""Curability questions, derived from what the training records' own answers say about a cure.

Medical Meadow's WikiDoc questions ask what causes a condition, what to expect, when to see a doctor;
one of 5,479 asks about a cure. Users ask "How to cure COVID-19?", and an adapter that never saw
the form answers it from the base's habits ("The best way to cure COVID-19 is to get vaccinated.").
82 answers of the shared set (74 in its training split) say whether their condition can be cured,
either way ("There is no cure for asthma", "Syphilis can be cured if it is diagnosed early"). Each of
those records is asked again in the users' forms and answered by its own cure sentence and the one
after it: the adapter learns that a cure question is answered with what is known about curing that
condition, and nothing is invented here, since every answer is a span of a training answer.
Most conditions' answers say nothing about a cure, though, and 74 examples of a new question form do
not outweigh the base's habits: three copies of them moved greedy's first word for COVID-19 only from
"The" (P 0.24) towards "There" (0.036 -> 0.049), and 40 steps of them alone taught the adapter to speak
of cures ("The cure rate for COVID-19 is 95% or higher."). What the data does know about curing each of
its ~1,000 conditions is their outlook: so the WikiDoc outlook answers ("What to expect if I have X
(Outlook/Prognosis)?") with no cure sentence are asked again as "How to cure X?" and answered with the
outlook itself (798 of them in the training split). A cure question about a condition the data does
not cover is then answered with an outlook, which invents no remedy: after 40 steps of the two sets
(``make adapter-cure``), "How to cure COVID-19?" got "The outcome is generally good." (LoRA). Nor does it
say how to cure anything: the data holds no treatment answers. Only training records are used, so the
validation split stays as it was.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from medalpaca_core.text.grounding import SENTENCE_END
from medalpaca_core.text.records import QAPair

FORMS = ("How to cure {}?", "Can {} be cured?")
CURE = re.compile(r"\b(cure[sd]?|curable|incurable)\b", re.IGNORECASE)
NOT_MEDICAL = re.compile(r"\b(salted|smoked|pork|ham|foods?)\b", re.IGNORECASE)  # "cured pork", "cured foods"
LONGEST = 400  # characters: a passage longer than this is a list the sentence split missed
LONGEST_OUTLOOK = 600  # characters: the outlook answers of the shared set have a median of ~250
OUTLOOK = re.compile(r"what to expect if i have .+\(outlook/prognosis\)", re.IGNORECASE)
# WikiDoc's question templates, each naming its condition (some with %27 for an apostrophe)
CONDITION = re.compile(
    r"what to expect if i have (?P<a>.+?)\s*\(|what causes (?P<b>.+?)\s*\?|what is (?P<c>.+?)\s*\?"
    r"|who is at (?:highest )?risk for (?P<d>.+?)\s*\?|when to seek urgent medical care when i have (?P<e>.+?)\s*\?"
    r"|what are the symptoms of (?P<f>.+?)\s*\?",
    re.IGNORECASE,
)


def condition_of(question: str) -> str | None:
    """The condition a WikiDoc-style question is about, or None for any other question."""
    match = CONDITION.match(question.strip())
    if not match:
        return None
    name = unquote(next(group for group in match.groups() if group)).strip()
    return name or None


def cure_passage(answer: str) -> str | None:
    """The answer's first sentence about a cure and the sentence after it, or None when it has none."""
    sentences = [s.strip() for line in answer.splitlines() for s in SENTENCE_END.split(line) if s.strip()]
    for index, sentence in enumerate(sentences):
        if CURE.search(sentence) and not NOT_MEDICAL.search(sentence):
            passage = " ".join(sentences[index : index + 2])
            return passage if len(passage) <= LONGEST else None
    return None


def cure_questions(records: list[QAPair], copies: int) -> list[QAPair]:
    """``copies`` of the cure questions: both forms for every record that says whether its condition is curable,
    and "How to cure X?" answered with the outlook for every outlook answer that does not."""
    derived = []
    for record in records:
        condition, passage = condition_of(record.input), cure_passage(record.output)
        if condition and passage:
            derived += [QAPair(record.instruction, form.format(condition), passage) for form in FORMS]
        elif condition and OUTLOOK.match(record.input.strip()) and len(record.output) <= LONGEST_OUTLOOK:
            derived.append(QAPair(record.instruction, FORMS[0].format(condition), record.output))
    return derived * copies
