"""A comparison's life in the core: the ballot it gets, what a vote judges, the notes it keeps when it ends."""

from __future__ import annotations

import threading

import pytest

from medalpaca_core.arena.ballots import BallotBox
from medalpaca_core.arena.run import ComparisonRun
from medalpaca_core.arena.votes import VoteStore
from medalpaca_core.engine import Studio
from medalpaca_core.generation.settings import GenerationSettings
from medalpaca_core.models.manager import ModelManager
from medalpaca_core.text.prompts import PromptError

SETTINGS = GenerationSettings(max_new_tokens=6)


@pytest.fixture
def manager():
    return ModelManager(device="cpu")


@pytest.fixture
def box(tmp_path):
    return BallotBox(VoteStore(tmp_path / "votes.sqlite3"))


def start(studio, box, variant_ids, question="What is asthma?", cancel=None):
    cancel = cancel or threading.Event()
    return ComparisonRun.start(studio, box, "s", variant_ids, question, "", SETTINGS, blind=True, cancel=cancel)


def test_a_run_shows_its_ballot_what_the_page_shows_and_keeps_the_notes_when_it_ends(tiny_registry, manager, box):
    run = start(Studio(tiny_registry, manager), box, ["tiny", "tiny-lora-0"])
    assert run.ballot.blind and sorted(run.ballot.columns) == ["tiny", "tiny-lora-0"] and not run.ballot.finished
    for answers in run.stream:
        run.show(answers)
    assert run.ballot.comparison is not None and run.ballot.comparison.id == run.ballot.id
    final = run.finish(answers)
    assert run.ballot.finished and final.id == run.ballot.id and final.variant_ids == list(run.ballot.columns)
    notes = run.ballot.details
    assert notes["tiny"].prompt == answers["tiny"].prompt and notes["tiny"].prompt.tokens > 5
    assert notes["tiny-lora-0"].change, "an adapter beside its base says where it departs from it"


def test_the_vote_stops_what_still_generates(tiny_registry, manager, box):
    cancel = threading.Event()
    run = start(Studio(tiny_registry, manager), box, ["tiny"], cancel=cancel)
    run.ballot.cast("tiny")
    assert cancel.is_set()


def test_bad_input_is_refused_before_any_ballot_is_issued(tiny_registry, manager, box):
    with pytest.raises(PromptError):
        start(Studio(tiny_registry, manager), box, ["tiny"], question="")
    assert not box._ballots
