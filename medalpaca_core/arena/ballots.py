"""Trusted votes: the server issues an id per comparison, keeps what it showed, and accepts one vote for it.

A vote that came from the page as a variant name could be made up by any script: a vote for a
variant that was never shown, a second vote on the same comparison, a vote on a comparison that
never happened. So the server remembers every comparison it ran (its columns in shown order,
whether their names were hidden, the answers so far, which browser session ran it) under a
random id, and a vote names that id and one of its columns, or "tie", or "all bad". Anything else
is refused with a message before the votes database is touched.

In blind mode the columns are shuffled per comparison and called Model A, B, …; the mapping from
letter to variant exists only here, on the server, until the vote. The shuffle's randomness is
the server's own (``random.SystemRandom``), not derived from the id the page sees, so the page
cannot work the mapping out; tests pass a seeded ``random.Random``.
"""

from __future__ import annotations

import os
import random
import secrets
import string
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ..runtime.hosting import on_space
from ..serving.ratelimit import RateLimited, RateLimiter
from .export import Comparison
from .ratings import ALL_BAD, DRAWS, TIE
from .votes import VoteError, VoteStore, answered

LETTERS = string.ascii_uppercase
MAX_OPEN_BALLOTS = 10_000  # comparisons remembered for a vote; the oldest are forgotten first
VOTE_LIMIT_VARIABLE = "MEDALPACA_VOTE_LIMIT"
DEFAULT_VOTE_LIMIT = "60/h"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def public_deployment() -> bool:
    """Whether strangers reach this app: a Space, or a server bound to a non-loopback address
    (GRADIO_SERVER_NAME=0.0.0.0). There names stay hidden until the vote, always; on one's own
    machine blind mode is a choice."""
    return on_space() or os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1") not in LOOPBACK


def column_label(index: int) -> str:
    """The neutral name of a column: Model A, Model B, …"""
    return f"Model {LETTERS[index]}"


@dataclass
class Ballot:
    """One comparison as the server showed it, waiting for its vote."""

    id: str
    session: str
    columns: tuple[str, ...]  # variant ids, in shown order
    blind: bool
    comparison: Comparison | None = None  # the answers as last shown; None until every column has text
    answers: dict[str, Any] = field(default_factory=dict)  # the same answers with their stats (``Answer``)
    voted: bool = False
    on_vote: Callable[[], None] | None = None  # stops what still generates for it
    winner: str | None = None
    finished: bool = False  # every column has ended: what the ballot holds is the final comparison
    details: dict[str, Any] = field(default_factory=dict)  # per variant, what the page reveals with the name

    def show(self, comparison: Comparison, answers: dict[str, Any]) -> None:
        """Hold what the columns show now (a vote judges that), under the ballot's id; nothing changes once voted."""
        if not self.voted:
            self.comparison, self.answers = replace(comparison, id=self.id), dict(answers)

    def finish(self, details: dict[str, Any]) -> None:
        """Every column has ended: keep ``details`` (per variant, what the page reveals with the name)."""
        self.details, self.finished = details, True

    def cast(self, winner: str) -> None:
        """Take the vote for ``winner`` (checked by the box) and stop what still generates."""
        self.voted, self.winner = True, winner
        if self.on_vote is not None:
            self.on_vote()

    @property
    def sealed(self) -> bool:
        """Whether the page must still hide which variant answered in which column: blind and not voted
        on, unless it ended with nothing to vote on (then there is nothing the names could sway)."""
        return self.blind and not self.voted and not (self.finished and self.comparison is None)

    def label(self, index: int) -> str:
        return column_label(index) if self.blind else self.columns[index]

    def resolve(self, choice: str) -> str:
        """A column letter, its label ("Model B"), TIE or ALL_BAD, or (names shown) a variant id -> the winner."""
        text = (choice or "").strip()
        if text in DRAWS:
            return text
        for index, ident in enumerate(self.columns):
            if text in (LETTERS[index], column_label(index)) or (not self.blind and text == ident):
                return ident
        shown = ", ".join(self.label(n) for n in range(len(self.columns)))
        raise VoteError(f"{text!r} is not a column of this comparison: vote for {shown}, {TIE!r} or {ALL_BAD!r}.")


def ready_to_vote(answers: dict[str, Any]) -> bool:
    """Voting opens once every column shows text, or once all have finished and at least one answered."""
    if all(answer.text.strip() for answer in answers.values()):
        return True
    return all(answer.finished for answer in answers.values()) and any(a.text.strip() for a in answers.values())


@dataclass
class BallotBox:
    """Issues comparison ids, keeps their ballots, takes one vote each; safe to share between threads."""

    store: VoteStore
    limiter: RateLimiter = field(default_factory=lambda: RateLimiter(None))
    shuffler: random.Random = field(default_factory=random.SystemRandom)
    capacity: int = MAX_OPEN_BALLOTS
    _ballots: OrderedDict[str, Ballot] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_env(cls, store: VoteStore) -> BallotBox:
        """A box whose per-client vote cap is MEDALPACA_VOTE_LIMIT (default 60 an hour; ``off`` for none)."""
        return cls(store, RateLimiter.from_env(VOTE_LIMIT_VARIABLE, DEFAULT_VOTE_LIMIT))

    def issue(
        self, session: str, variant_ids: list[str], blind: bool, on_vote: Callable[[], None] | None = None
    ) -> Ballot:
        """A new ballot for a comparison of ``variant_ids``; blind ones get their columns in a random order.
        ``on_vote`` runs when its vote is taken (it stops what still generates)."""
        columns = list(variant_ids)
        if blind:
            with self._lock:
                self.shuffler.shuffle(columns)
        ballot = Ballot(secrets.token_hex(16), session, tuple(columns), blind, on_vote=on_vote)
        with self._lock:
            self._ballots[ballot.id] = ballot
            while len(self._ballots) > self.capacity:
                self._ballots.popitem(last=False)
        return ballot

    def show(self, ballot: Ballot, comparison: Comparison, answers: dict[str, Any]) -> None:
        """Record what the columns show now (a vote judges that); nothing changes once the ballot has its vote.

        The comparison is stored under the ballot's id, so a stored vote, an export and the page name
        one comparison alike."""
        with self._lock:
            ballot.show(comparison, answers)

    def get(self, ballot_id: str, session: str) -> Ballot:
        """The ballot issued to ``session`` under ``ballot_id``; VoteError for an id this server never gave it."""
        with self._lock:
            ballot = self._ballots.get(ballot_id or "")
        if ballot is None or ballot.session != session:
            raise VoteError("This comparison is unknown to the server (or too old): run a comparison, then vote.")
        return ballot

    def vote(self, ballot_id: str, session: str, choice: str, client: str) -> Ballot:
        """Check the vote, count it against the client's cap, store it, stop the generation; VoteError else.

        Every check comes before the database: a refused vote is stored nowhere."""
        ballot = self.get(ballot_id, session)
        winner = ballot.resolve(choice)
        with self._lock:
            if ballot.voted:
                raise VoteError("This comparison already has a vote: each comparison counts once.")
            if ballot.comparison is None:
                raise VoteError("Wait until every column has an answer, then vote.")
            if winner not in DRAWS and not any(
                a.variant_id == winner and answered(a) for a in ballot.comparison.answers
            ):
                raise VoteError(f"{choice!r} gave no answer: vote for a column that answered, a tie or all bad.")
            try:
                self.limiter.admit(client)
            except RateLimited as error:
                raise VoteError(str(error)) from error
            self.store.record(ballot.comparison, winner, blind=ballot.blind)
            ballot.cast(winner)
        return ballot
