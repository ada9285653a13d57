"""Whether an answer repeats a sentence: the looping a fine-tune that cannot stop falls into.

A model that has lost its end-of-sequence token fills the token budget by saying the same thing
again ("The symptoms include thirst. The symptoms include thirst. ..."). The rule is deliberately
plain, so a reader can check any verdict by eye: split the answer into sentences (at ``.``, ``!``,
``?`` followed by white space, at line breaks, and where a lower-case letter runs straight into an
upper-case one: Medical Meadow's flattened WikiDoc lists taught the adapters to loop as "liver
diseaseA history of liver diseaseA history of ..."), normalise each to its lower-case words, and
call the answer repetitive when one sentence of at least ``MIN_WORDS`` words occurs twice. Short
sentences ("Yes.", a list item such as "- fever") are left out: they recur in good answers too.
A loop need not break into sentences, though: "Viruses that cause pneumonia or bronchitis Viruses
that cause pneumonia or bronchitis ..." runs to the token limit as one. So a run of
``LOOP_WORDS`` words that occurs ``LOOP_TIMES`` times counts as well, wherever it starts.
On the 551 gold answers of the shipped adapters' validation split the sentence rule flags one (a
drug leaflet that does repeat "take it as soon as you remember on the same day"), both rules
together three (leaflets repeating "call your health care provider if you ..." and the like).
"""

from __future__ import annotations

import re
from collections import Counter

MIN_WORDS = 4
LOOP_WORDS = 8
LOOP_TIMES = 3
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+|(?<=[a-z])(?=[A-Z])")
_WORD = re.compile(r"\w+")


def sentences(text: str) -> list[str]:
    """The answer's sentences, each normalised to its lower-case words joined by single spaces."""
    return [" ".join(_WORD.findall(part.lower())) for part in _SENTENCE_END.split(text)]


def repeated_sentence(text: str, min_words: int = MIN_WORDS) -> str | None:
    """The first sentence of at least ``min_words`` words that occurs twice in ``text``, else None."""
    if min_words < 1:
        raise ValueError(f"min_words must be at least 1, got {min_words}")
    counts = Counter(sentence for sentence in sentences(text) if len(sentence.split()) >= min_words)
    return next((sentence for sentence, count in counts.items() if count > 1), None)


def looping_phrase(text: str, words: int = LOOP_WORDS, times: int = LOOP_TIMES) -> str | None:
    """The first run of ``words`` consecutive words that occurs ``times`` times in ``text``, else None."""
    tokens = _WORD.findall(text.lower())
    counts = Counter(tuple(tokens[i : i + words]) for i in range(len(tokens) - words + 1))
    return next((" ".join(run) for run, count in counts.items() if count >= times), None)


def repetition(text: str, min_words: int = MIN_WORDS) -> str | None:
    """What ``text`` repeats: a sentence said twice, else a phrase looping without sentence breaks."""
    return repeated_sentence(text, min_words) or looping_phrase(text)
