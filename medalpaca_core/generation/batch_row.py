"""One row's life in the scheduler: its tokens become text, a finish reason and stats, reported as it grows.

A row belongs to a ``Ticket`` (one submission: the rows a comparison, a chat turn, an API request or an
evaluation question asks of one base, with one set of settings and one cancel event). The ticket is done
when all of its rows have ended, however each ended (an answer, a cancellation, an error of its own).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ..text.prompts import cut_response
from .answers import Answer, FinishReason, Stats, Status
from .decoding import IncrementalDecoder, Row
from .sampling import RowSampler
from .settings import GenerationSettings


class Ticket:
    """Rows submitted together: their settings, their cancel event and where their answers go."""

    def __init__(
        self,
        count: int,
        settings: GenerationSettings,
        cancel: threading.Event,
        on_answer: Callable[[Answer], None],
    ):
        self.settings, self.cancel, self.on_answer = settings, cancel, on_answer
        self.submitted = time.perf_counter()  # waiting counts in the time to first token
        self.done = threading.Event()
        self._remaining, self._lock = count, threading.Lock()
        if not count:
            self.done.set()

    def row_ended(self) -> None:
        with self._lock:
            self._remaining -= 1
            if not self._remaining:
                self.done.set()


class LiveRow:
    """A submitted row: waiting, then decoding in the batch; ``pending`` is its newest token, not yet fed."""

    def __init__(self, row: Row, ticket: Ticket, loaded: Any, eos_ids: set[int]):
        self.row, self.ticket, self.loaded, self.eos_ids = row, ticket, loaded, eos_ids
        self.sampler = RowSampler(ticket.settings, eos_ids, loaded.model.device)
        self.decoder = IncrementalDecoder(loaded.tokenizer)
        self.finish: FinishReason | None = None
        self.first_token_at: float | None = None
        self.pending: int | None = None
        self.ended = False

    @property
    def settings(self) -> GenerationSettings:
        return self.ticket.settings

    def take(self, logits: Any) -> None:
        """Choose this row's next token from its logits and report the answer it makes."""
        ids = [*self.row.prompt_ids, *self.decoder.ids]
        token = self.sampler.choose(logits, ids, len(self.decoder.ids))
        now = time.perf_counter()
        self.first_token_at = self.first_token_at or now
        self.pending = token
        if token in self.eos_ids:
            self.finish = FinishReason.EOS
        else:
            self.decoder.push(token)
        text, hit_marker = cut_response(self.row.template, self.decoder.text)
        if hit_marker and self.finish is None and len(self.decoder.ids) >= self.settings.min_new_tokens:
            self.finish = FinishReason.STOP
        if self.finish is None and len(self.decoder.ids) >= self.settings.max_new_tokens:
            self.finish = FinishReason.LENGTH
        self._report(text, now)

    @property
    def leaving(self) -> bool:
        """Ended by itself, or its request was cancelled (Stop, a client gone)."""
        return self.finish is not None or self.ticket.cancel.is_set()

    def leave(self) -> None:
        """Out of the batch: a row that did not finish by itself was cancelled and says so, with its text so far."""
        if self.finish is None:
            self.finish = FinishReason.CANCELLED
            self._report(cut_response(self.row.template, self.decoder.text)[0], time.perf_counter())
        self._end()

    def fail(self, message: str) -> None:
        """This row cannot be answered; the others go on."""
        self.ticket.on_answer(Answer(self.row.variant_id, status=Status.ERROR, error=message))
        self._end()

    def _end(self) -> None:
        if not self.ended:
            self.ended = True
            self.ticket.row_ended()

    def _report(self, text: str, now: float) -> None:
        stats = Stats(
            prompt_tokens=len(self.row.prompt_ids),
            new_tokens=len(self.decoder.ids),
            ttft_s=None if self.first_token_at is None else self.first_token_at - self.ticket.submitted,
            wall_s=now - self.ticket.submitted,
            memory_bytes=self.loaded.footprint,
            quantization=self.loaded.key.quantization,
            truncated=self.row.truncated,
            finish_reason=self.finish or "",
        )
        status = Status.DONE if self.finish else Status.GENERATING
        self.ticket.on_answer(Answer(self.row.variant_id, text, status, None, stats))
