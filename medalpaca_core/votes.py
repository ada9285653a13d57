"""Preference votes: which answer of a comparison a person found best, kept in SQLite.

The paper compares variants by benchmark accuracy only; votes add the human side. A vote stores
the comparison it judges (question, context, settings, variant ids, answers, time) and nothing
about the voter. The database lives in the data folder, in WAL mode so that the web app's
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

from .echo import brief
from .export import Comparison
from .paths import data_dir

log = logging.getLogger(__name__)

ALL_BAD = "all-bad"  # the winner of a comparison in which no answer was acceptable
VOTES_FILE = "votes.sqlite3"

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
    settings TEXT NOT NULL
)
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
    """A vote that does not name one of the compared variants (or 'all bad')."""


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
            yield connection
        except (OSError, sqlite3.Error) as error:
            log.warning("Votes database %s: cannot %s: %s: %s", self.path, purpose, type(error).__name__, error)
            problem = storage_problem(error)
            raise VoteStorageError(f"Cannot {purpose}: {problem}. Votes saved before are kept.") from error
        finally:
            if connection is not None:
                connection.close()

    def record(self, comparison: Comparison, winner: str) -> None:
        """Store (or, for a comparison already voted on, replace) a vote, committed at once."""
        if winner != ALL_BAD and winner not in comparison.variant_ids:
            raise VoteError(
                f"Cannot vote for {brief(winner)}: the comparison's variants are {', '.join(comparison.variant_ids)} "
                f"(or {ALL_BAD!r})"
            )
        answers = [
            {"variant_id": a.variant_id, "text": a.text, "status": a.status, "error": a.error, "stats": a.stats}
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
        )
        with self._connect("save the vote") as connection, connection:  # the inner `with` commits
            connection.execute(
                "INSERT INTO votes (comparison_id, created, winner, variant_ids, question, context, answers, settings) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(comparison_id) DO UPDATE SET winner = excluded.winner, "
                "voted = strftime('%Y-%m-%dT%H:%M:%SZ', 'now')",
                row,
            )

    def count(self) -> int:
        with self._connect("count the votes") as connection:
            return connection.execute("SELECT COUNT(*) FROM votes").fetchone()[0]

    def leaderboard(self) -> list[Standing]:
        with self._connect("read the leaderboard") as connection:
            return [Standing(*row) for row in connection.execute(LEADERBOARD, (ALL_BAD,))]
