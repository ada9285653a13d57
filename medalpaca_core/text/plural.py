"""A count with its noun in agreement ('1 variant', '2 variants'): every count the page, the CLI and messages show.

An f-string such as ``f"{n} variants"`` reads wrong once in a while ("1 more variants"); this is the one place
that decides the noun's form.
"""

from __future__ import annotations


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``'1 vote'``, ``'0 votes'``, ``'1,089 questions'``; ``plural`` where an added 's' is wrong (``'2 analyses'``).
    Thousands are separated, as elsewhere on the page."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"
