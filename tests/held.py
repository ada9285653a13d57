"""Runs that wait for the test: answers and evaluations that no machine, however fast, finishes first.

Tests of Stop, of a client that leaves, of a vote that ends a run and of a waiting queue need a run that is
still going when the test acts. A long answer (hundreds of new tokens) is a race against the machine's
speed that a fast machine loses: the answer ends by itself before Stop arrives. These stand-ins let a run
take a few steps, then hold it until a request is cancelled (Stop, a vote, a closed stream) or the test ends,
so that the outcome depends on what the test does, never on how fast the model is.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import medalpaca_core.evaluation.runner
from medalpaca_core.generation.answers import Answer
from medalpaca_core.generation.scheduler import BatchScheduler

POLL_S = 0.005  # how often a held run looks whether it may go on
FREE_TOKENS = 3  # tokens every answer shows before it is held: enough for text in each column
FREE_PASSES = 1  # passes (a question, or up to 16 scored together) an evaluation makes before the next is held


class Hold:
    """Where held runs wait; ``reached`` is set once one is waiting, ``release()`` lets every run go on."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self._released = threading.Event()

    def wait_while(self, holding: Callable[[], bool]) -> None:
        """Returns once ``holding()`` is false or the test is over; polls, since nothing signals a cancel event's
        setting to a second waiter."""
        while not self._released.is_set() and holding():
            self.reached.set()
            self._released.wait(POLL_S)

    def release(self) -> None:
        self._released.set()


class HeldAnswers(Hold):
    """The base's running batch (``BatchScheduler``), but once every row in it has shown ``FREE_TOKENS`` tokens and
    nobody waits to join, it takes no further step until a row's request is cancelled (or the test is over).

    ``ended`` holds each request's last answers by variant once all its rows have ended; ``run_ended`` is set then."""

    def __init__(self) -> None:
        super().__init__()
        self.ended: list[dict[str, Answer]] = []
        self.run_ended = threading.Event()
        self._step, self._run = BatchScheduler._step, BatchScheduler.run

    def held(self, scheduler: BatchScheduler) -> bool:
        rows = scheduler._running
        return (
            bool(rows)
            and not scheduler.waiting
            and all(len(row.decoder.ids) >= FREE_TOKENS and not row.leaving for row in rows)
        )

    def step(self, scheduler: BatchScheduler, on_cpu: bool) -> bool:
        going = self._step(scheduler, on_cpu)
        self.wait_while(lambda: self.held(scheduler))
        return going

    def run(self, scheduler: BatchScheduler, rows: list, settings: Any, cancel: threading.Event, on_answer) -> None:
        last: dict[str, Answer] = {}

        def record(answer: Answer) -> None:
            last[answer.variant_id] = answer
            on_answer(answer)

        try:
            self._run(scheduler, rows, settings, cancel, record)
        finally:
            self.ended.append(last)
            self.run_ended.set()

    def install(self, monkeypatch) -> HeldAnswers:
        # functions, not bound methods, so that each is bound to the scheduler it is called on
        monkeypatch.setattr(BatchScheduler, "_step", lambda scheduler, on_cpu: self.step(scheduler, on_cpu))
        monkeypatch.setattr(BatchScheduler, "run", lambda scheduler, *args: self.run(scheduler, *args))
        return self


class HeldQuestions(Hold):
    """The evaluation runner's pass over some questions, but the pass after the first ``FREE_PASSES`` waits until
    its run is cancelled (Stop, a client gone). ``passes`` lists the question keys of every pass as it starts."""

    def __init__(self) -> None:
        super().__init__()
        self.passes: list[list[str]] = []
        self._answer_chunk = medalpaca_core.evaluation.runner._answer_chunk

    def answer_chunk(self, studio, mode, todo, config, exam, cancel):
        self.passes.append([question.key for question, _ in todo])
        if len(self.passes) > FREE_PASSES:
            self.wait_while(lambda: not cancel.is_set())
        return self._answer_chunk(studio, mode, todo, config, exam, cancel)

    def install(self, monkeypatch) -> HeldQuestions:
        monkeypatch.setattr(medalpaca_core.evaluation.runner, "_answer_chunk", self.answer_chunk)
        return self
