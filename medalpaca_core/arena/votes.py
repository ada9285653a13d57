"""Preference votes: which answer of a comparison a person found best, kept in SQLite.

The paper compares variants by benchmark accuracy only; votes add the human side. A vote stores
the comparison it judges (question, context, settings, variant ids in shown order, answers, the
winner, whether the names were hidden, time) and nothing about the voter. Each comparison takes
one vote, for a column that answered, a tie or "all bad"; anything else is refused and stored
nowhere. Blind and unblinded votes are kept apart: only blind ones make the public ratings.

The database lives in the data folder, in WAL mode so that the web app's
concurrent sessions can read the leaderboard while another one writes, and every vote is
committed at once: a crash (even ``kill -9``) loses nothing that was acknowledged.

A database that cannot be used (read-only or missing folder, full disk, damaged file) raises
``VoteStorageError`` with a short message for the page; the details go to the server log. SQLite
commits atomically, so a vote that fails to save leaves the stored ones as they were.
"""

from __future__ import annotations

import errno
import json
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..generation.answers import Answer, Status
from ..runtime.paths import data_dir
from ..text.visitor import brief
from .export import AnswerRecord, Comparison
from .ratings import ALL_BAD, DRAWS, TIE, FitSettings, Leaderboard, Vote, leaderboard

log = logging.getLogger(__name__)

__all__ = ["ALL_BAD", "TIE", "VOTES_FILE", "VoteError", "VoteStorageError", "VoteStore", "answered"]
VOTES_FILE = "votes.sqlite3"
# An answer one may vote for: text that was shown, still streaming (a vote may stop it) or finished.
ANSWERED_STATUSES = (Status.GENERATING, Status.DONE)

SCHEMA = """
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY,
    comparison_id TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL,
    voted TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    winner TEXT NOT NULL,
    variant_ids TEXT NOT NULL,
    question TEXT NOT NULL,
    context TEXT NOT NULL,
    answers TEXT NOT NULL,
    settings TEXT NOT NULL,
    blind INTEGER NOT NULL DEFAULT 0
)
"""
# Columns added since the first schema: (name, definition). Older databases get them on first use, their
# rows the default (votes cast before blind mode existed saw the names: unblinded).
ADDED_COLUMNS = (("blind", "INTEGER NOT NULL DEFAULT 0"),)
EXPORT_QUERY = """
SELECT comparison_id, question, context, variant_ids, answers, settings, winner, blind, voted
FROM votes ORDER BY id
"""

# Wins per variant over the comparisons it took part in (variant_ids is a JSON list).
LEADERBOARD = """
SELECT shown.value AS variant_id,
       SUM(votes.winner = shown.value) AS wins,
       COUNT(*) AS comparisons,
       SUM(votes.winner = ?) AS all_bad
FROM votes, json_each(votes.variant_ids) AS shown
GROUP BY shown.value
ORDER BY wins DESC, CAST(wins AS REAL) / COUNT(*) DESC, variant_id
"""


class VoteError(ValueError):
    """A vote the store refuses: not for a column that answered, a second one on a comparison, nothing answered."""


class VoteStorageError(RuntimeError):
    """The votes database cannot be read or written; the message says why, without server paths."""


FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


def storage_problem(error: Exception) -> str:
    """What went wrong, in the words a person running the app acts on."""
    text = str(error).lower()
    if "full" in text or getattr(error, "errno", None) in FULL_ERRNOS:
        return "the disk holding the data folder is full"
    if isinstance(error, OSError) or "readonly" in text or "unable to open" in text or "read-only" in text:
        return "the data folder is read-only or cannot be created"
    return f"the database reports: {error}"


@dataclass(frozen=True)
class Standing:
    """One leaderboard row."""

    variant_id: str
    wins: int
    comparisons: int
    all_bad: int

    @property
    def win_rate(self) -> float:
        return self.wins / self.comparisons if self.comparisons else 0.0


class VoteStore:
    """The votes database; one short connection per call, so any thread may use it."""

    def __init__(self, path: Path | None = None):
        self.path = path or data_dir() / VOTES_FILE

    @contextmanager
    def _connect(self, purpose: str) -> Iterator[sqlite3.Connection]:
        """A connection for ``purpose`` ("save the vote"); any storage failure becomes a VoteStorageError."""
        connection = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=10)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(SCHEMA)
            migrate(connection)
            yield connection
        except (OSError, sqlite3.Error) as error:
            log.warning("Votes database %s: cannot %s: %s: %s", self.path, purpose, type(error).__name__, error)
            problem = storage_problem(error)
            raise VoteStorageError(f"Cannot {purpose}: {problem}. Votes saved before are kept.") from error
        finally:
            if connection is not None:
                connection.close()

    def record(self, comparison: Comparison, winner: str, blind: bool = False) -> None:
        """Store the one vote of ``comparison``, committed at once; a refused vote raises VoteError, stores nothing."""
        check_winner(comparison, winner)
        answers = [
            {"variant_id": a.variant_id, "text": a.text, "status": str(a.status), "error": a.error, "stats": a.stats}
            for a in comparison.answers
        ]
        row = (
            comparison.id,
            comparison.created,
            winner,
            json.dumps(comparison.variant_ids),
            comparison.question,
            comparison.context,
            json.dumps(answers, ensure_ascii=False),
            json.dumps(comparison.settings),
            int(blind),
        )
        with self._connect("save the vote") as connection, connection:  # the inner `with` commits
            inserted = connection.execute(
                "INSERT INTO votes (comparison_id, created, winner, variant_ids, question, context, answers, settings, "
                "blind) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(comparison_id) DO NOTHING",
                row,
            ).rowcount
        if not inserted:
            raise VoteError("This comparison already has a vote: each comparison counts once.")

    def count(self) -> int:
        with self._connect("count the votes") as connection:
            return connection.execute("SELECT COUNT(*) FROM votes").fetchone()[0]

    def leaderboard(self) -> list[Standing]:
        with self._connect("read the leaderboard") as connection:
            return [Standing(*row) for row in connection.execute(LEADERBOARD, (ALL_BAD,))]

    def records(self) -> list[dict[str, Any]]:
        """Every vote as a dataset row (``votefile.FIELDS``), oldest first. The variants are the columns that
        answered; a vote an older version took for a column that did not answer is left out."""
        with self._connect("read the votes") as connection:
            rows = connection.execute(EXPORT_QUERY).fetchall()
        return [record for record in map(dataset_row, rows) if record is not None]

    def ratings(self, blind: bool = True, settings: FitSettings | None = None) -> Leaderboard:
        """Bradley–Terry ratings from the blind votes (the public leaderboard) or from the unblinded ones."""
        return leaderboard(votes_of(self.records(), blind), settings)


def votes_of(records: list[dict[str, Any]], blind: bool) -> list[Vote]:
    """The blind (or the unblinded) votes among dataset rows, as the ratings take them."""
    return [Vote(tuple(record["variants"]), record["winner"]) for record in records if record["blind"] == blind]


def answered(answer: AnswerRecord | Answer) -> bool:
    """Whether a column showed an answer one may vote for: text, and not an error or a wait."""
    return str(answer.status) in ANSWERED_STATUSES and bool(answer.text.strip())


def check_winner(comparison: Comparison, winner: str) -> None:
    """Refuse (VoteError) a vote on a comparison without answers, or for a column that gave none."""
    contestants = [answer.variant_id for answer in comparison.answers if answered(answer)]
    if not contestants:
        raise VoteError("This comparison produced no answer, so there is nothing to vote on.")
    if winner in DRAWS or winner in contestants:
        return
    if winner in comparison.variant_ids:
        raise VoteError(f"Cannot vote for {brief(winner)}: it gave no answer. Vote for one that did, a tie or all bad.")
    raise VoteError(
        f"Cannot vote for {brief(winner)}: the answers are from {', '.join(contestants)} (or {TIE!r}, {ALL_BAD!r})"
    )


def migrate(connection: sqlite3.Connection) -> None:
    """Add the columns that a database made by an older version lacks; its rows stay as they were."""
    present = {row[1] for row in connection.execute("PRAGMA table_info(votes)")}
    for name, definition in ADDED_COLUMNS:
        if name in present:
            continue
        try:
            with connection:
                connection.execute(f"ALTER TABLE votes ADD COLUMN {name} {definition}")
        except sqlite3.OperationalError as error:  # another connection added it a moment ago
            if "duplicate column" not in str(error):
                raise


def dataset_row(row: tuple[Any, ...]) -> dict[str, Any] | None:
    """A stored vote as a dataset row: variants and answers of the columns that answered, in shown order."""
    comparison_id, question, context, variant_ids, answers, settings, winner, blind, voted = row
    by_id = {answer["variant_id"]: answer for answer in json.loads(answers)}
    contestants = [
        ident
        for ident in json.loads(variant_ids)
        if ident in by_id and by_id[ident]["status"] in ANSWERED_STATUSES and (by_id[ident]["text"] or "").strip()
    ]
    if winner not in DRAWS and winner not in contestants:
        return None
    return {
        "comparison_id": comparison_id,
        "question": question,
        "context": context,
        "variants": contestants,
        "answers": [by_id[ident]["text"] for ident in contestants],
        "settings": json.loads(settings),
        "winner": winner,
        "blind": bool(blind),
        "time": voted,
    }
