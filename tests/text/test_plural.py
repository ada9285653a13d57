"""Counts with their noun in agreement, as every count on the page and the command line reads."""

from __future__ import annotations

import pytest

from medalpaca_core.text.plural import counted


@pytest.mark.parametrize(
    ("count", "noun", "plural", "expected"),
    [
        (1, "more variant", None, "1 more variant"),
        (2, "more variant", None, "2 more variants"),
        (0, "vote", None, "0 votes"),
        (1089, "question", None, "1,089 questions"),
        (1, "analysis", "analyses", "1 analysis"),
        (3, "analysis", "analyses", "3 analyses"),
    ],
)
def test_a_count_and_its_noun_agree(count, noun, plural, expected):
    assert counted(count, noun, plural) == expected
