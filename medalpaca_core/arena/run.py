"""One comparison's life on the server: its ballot, its stream of answers, what the vote judges, its end.

The page used to drive all of this itself (issue the ballot, hand it the stop, record what it showed, make the
notes, mark it finished), setting the ballot's fields from outside. A ``ComparisonRun`` owns those steps in
order, so the Compare tab only wires widgets to it, and the ballot changes state through its own methods. The
vote itself arrives later, in another request, and goes through ``BallotBox.vote`` by the ballot's id.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import replace

from ..engine import Studio
from ..generation.answers import Answer
from ..generation.settings import GenerationSettings
from ..models.loading import LoadError
from .ballots import Ballot, BallotBox, ready_to_vote
from .export import Comparison
from .notes import column_notes

log = logging.getLogger(__name__)


def label_of(studio: Studio, ident: str) -> str:
    """The registry's label, or the bare id of a variant the registry does not know."""
    return studio.variant(ident).label if studio.knows(ident) else ident


class ComparisonRun:
    """One question asked of several variants, from the ballot it gets to the notes its columns reveal."""

    def __init__(
        self,
        studio: Studio,
        box: BallotBox,
        ballot: Ballot,
        stream: Iterator[dict[str, Answer]],
        question: str,
        context: str,
        settings: GenerationSettings,
    ):
        self.studio, self.box, self.ballot, self.stream = studio, box, ballot, stream
        self.question, self.context, self.settings = question, context, settings

    @classmethod
    def start(
        cls,
        studio: Studio,
        box: BallotBox,
        session: str,
        variant_ids: list[str],
        question: str,
        context: str,
        settings: GenerationSettings,
        blind: bool,
        cancel: threading.Event,
    ) -> ComparisonRun:
        """Ask the studio (bad input raises here, before any ballot exists), then issue the ballot, whose vote
        stops what still generates."""
        stream = studio.stream(variant_ids, question, context, settings, cancel)
        ballot = box.issue(session, variant_ids, blind=blind, on_vote=cancel.set)
        return cls(studio, box, ballot, stream, question, context, settings)

    def record(self, answers: dict[str, Answer]) -> Comparison:
        """The comparison as shown: its columns in shown order, under the ballot's id."""
        shown = {ident: answers[ident] for ident in self.ballot.columns if ident in answers}
        labels = {ident: label_of(self.studio, ident) for ident in shown}
        comparison = Comparison.from_answers(self.question, self.context, self.settings, shown, labels)
        return replace(comparison, id=self.ballot.id)

    def show(self, answers: dict[str, Answer]) -> None:
        """The page shows ``answers`` now: once every column has text, that is what a vote judges."""
        if ready_to_vote(answers):
            self.box.show(self.ballot, self.record(answers), answers)

    def finish(self, answers: dict[str, Answer]) -> Comparison:
        """Every column has ended: the ballot keeps the notes its columns reveal with the names; the final record."""
        try:
            notes = column_notes(self.studio, answers)
        except LoadError as error:  # a model released between its answer and its note: the notes are left out
            log.warning("Column notes left out: %s", error)
            notes = {}
        self.ballot.finish(notes)
        return self.record(answers)
