"""Votes as a dataset: JSON Lines, one vote per line, so ratings can be recomputed anywhere and merged.

Each line holds ``comparison_id``, ``question``, ``context``, ``variants`` (the variant ids of the
columns that answered, in shown order), ``answers`` (their texts, same order), ``settings``,
``winner`` (a variant id, ``"tie"`` or ``"all-bad"``), ``blind`` (whether the names were hidden
when the vote was cast) and ``time`` (ISO 8601). Nothing about the voter: the store never had it.

Reading is lenient where merging needs it and strict where ratings would go wrong: unknown keys
are ignored; ``answers``, ``settings``, ``question`` and ``context`` may be missing; a line that
is not a JSON object, lacks a required key, or names a winner that was not shown is skipped with
a note naming the line; a comparison id seen twice (the same file merged twice) counts once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from .ratings import RatingError, Vote

FIELDS = ("comparison_id", "question", "context", "variants", "answers", "settings", "winner", "blind", "time")
REQUIRED = ("comparison_id", "variants", "winner", "blind", "time")
NOTED_PROBLEMS = 5  # lines named one by one before the rest are only counted
VOTER_NOTE = "Votes store nothing about the voter: no address, account, cookie or session."


class VoteFileError(ValueError):
    """A votes file that cannot be used at all (missing, unreadable, or without one valid vote)."""


@dataclass(frozen=True)
class StoredVote:
    """What a rating needs from one line of a votes file."""

    comparison_id: str
    vote: Vote
    blind: bool
    time: str


@dataclass
class VoteFile:
    """The valid votes of a file and the problems met while reading it."""

    votes: list[StoredVote] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def selected(self, blind: bool) -> list[Vote]:
        return [stored.vote for stored in self.votes if stored.blind == blind]

    def notes(self) -> list[str]:
        if len(self.problems) <= NOTED_PROBLEMS:
            return list(self.problems)
        return [*self.problems[:NOTED_PROBLEMS], f"... and {len(self.problems) - NOTED_PROBLEMS} more lines skipped."]


def write_jsonl(records: Iterable[dict[str, Any]], stream: TextIO) -> int:
    """Write dataset rows, one JSON object per line, keys in ``FIELDS`` order; return how many were written."""
    count = 0
    for record in records:
        stream.write(json.dumps({key: record.get(key) for key in FIELDS}, ensure_ascii=False) + "\n")
        count += 1
    return count


def parse_line(text: str) -> StoredVote:
    """One line as a vote, or RatingError saying what is wrong with it."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        raise RatingError(f"not JSON ({error.msg})") from error
    if not isinstance(record, dict):
        raise RatingError("not a JSON object")
    missing = [key for key in REQUIRED if key not in record]
    if missing:
        raise RatingError(f"missing {', '.join(missing)}")
    variants, winner, blind = record["variants"], record["winner"], record["blind"]
    if not isinstance(variants, list) or not isinstance(winner, str) or not isinstance(blind, bool):
        raise RatingError("'variants' must be a list, 'winner' a string and 'blind' true or false")
    if not isinstance(record["comparison_id"], str) or not record["comparison_id"]:
        raise RatingError("'comparison_id' must be a non-empty string")
    try:
        datetime.fromisoformat(str(record["time"]))
    except ValueError as error:
        raise RatingError(f"'time' is not ISO 8601: {record['time']!r}") from error
    return StoredVote(record["comparison_id"], Vote(tuple(variants), winner).check(), blind, record["time"])


def read_lines(lines: Iterable[str]) -> VoteFile:
    """Every valid vote among ``lines``; blank lines are skipped silently, bad ones with a note."""
    result, seen = VoteFile(), set()
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            stored = parse_line(text)
        except RatingError as error:
            result.problems.append(f"line {number} skipped: {error}")
            continue
        if stored.comparison_id in seen:
            result.problems.append(f"line {number} skipped: comparison {stored.comparison_id} was already counted")
            continue
        seen.add(stored.comparison_id)
        result.votes.append(stored)
    return result


def read_jsonl(path: Path) -> VoteFile:
    """The votes of a JSON Lines file; VoteFileError if it cannot be read or holds no valid vote."""
    try:
        with path.open(encoding="utf-8") as stream:
            result = read_lines(stream)
    except FileNotFoundError as error:
        raise VoteFileError(f"No votes file at {path}") from error
    except (OSError, UnicodeDecodeError) as error:
        raise VoteFileError(f"Cannot read the votes file {path}: {error}") from error
    if not result.votes:
        reason = "; ".join(result.notes()) if result.problems else "it is empty"
        raise VoteFileError(f"No valid vote in {path}: {reason}")
    return result
