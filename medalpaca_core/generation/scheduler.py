"""Continuous batching: one running batch per loaded base, which every request's rows join and leave.

Each loaded base has one ``BatchScheduler`` and, while it has work, one worker thread, the only thread
that runs that model. A comparison, a chat turn, an API request or an evaluation question submits its
rows (each with its adapter and its request's settings); every step the worker

1. admits waiting rows, first come first served, up to ``max_rows`` in the batch, and prefills them
   together (each gets its first token from the prefill);
2. runs one decoding step for every row in the batch, each row with its own adapter (the fused
   multi-LoRA path of ``LoadedModel.rows_adapters``) and its own sampler;
3. lets finished and cancelled rows leave, freeing their cache rows.

So a request arriving mid-answer waits at most one step plus its own prefill, and nobody waits for a
running answer to end. Rows are exact: a row's keys, values and positions are its own whatever joins
or leaves (``batch_cache``), so its greedy answer is the one it gets alone (up to the floating-point
rounding of a different batch size). A row that cannot be served (prompt longer than the window, its
adapter gone while it waited, a failed prefill) fails alone.

transformers 5 ships continuous batching (``generate_batch``, ``ContinuousBatchingManager``: every request's
tokens packed into one (1, tokens) sequence over a paged KV cache). What it lacks here: one adapter per row
(the fused multi-LoRA hooks select adapters by batch row, and a packed sequence has one row), a seed per
request (``do_sample`` and one ``torch.multinomial`` for the whole batch), a repetition penalty or minimum
length per request, template stop markers and our streaming ``Answer``s. So this scheduler keeps the model's
ordinary forward over a padded (rows, tokens) batch and a ``DynamicCache``, and takes transformers' logits
processors for each row's sampling (``sampling``); the paged cache would pay off at batch sizes and context
lengths far above the 8 rows of a few hundred tokens that it serves.
"""

from __future__ import annotations

import threading
import weakref
from collections import deque
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from ..text.plural import counted
from .answers import Answer
from .batch_cache import BatchCache
from .batch_row import LiveRow, Ticket
from .cpu_share import CPU_SHARE
from .decoding import Row, eos_token_ids, left_pad
from .multilora import BASE_ROW
from .settings import GenerationSettings


class SchedulerBusy(RuntimeError):
    """More rows wait than the scheduler accepts; the request is refused whole, nothing of it runs."""


@dataclass(frozen=True)
class SchedulerConfig:
    """``max_rows``: rows decoding together in one batch; ``max_waiting``: rows waiting to join it."""

    max_rows: int = 8
    max_waiting: int = 32


StepHook = Callable[[int, list[str]], None]  # (step number, the variant ids of the rows in the batch after it)


class BatchScheduler:
    """The running batch of one loaded base (a ``LoadedModel``)."""

    def __init__(self, loaded: Any, config: SchedulerConfig | None = None, on_step: StepHook | None = None):
        self.loaded, self.config, self.on_step = loaded, config or SchedulerConfig(), on_step
        self.eos_ids = eos_token_ids(loaded.model, loaded.tokenizer)
        self._waiting: deque[LiveRow] = deque()
        self._running: list[LiveRow] = []
        self._batch: BatchCache | None = None
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self.steps = 0

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def submit(
        self,
        rows: list[Row],
        settings: GenerationSettings,
        cancel: threading.Event,
        on_answer: Callable[[Answer], None],
    ) -> Ticket:
        """Queue ``rows``; they join the batch at a coming step. Raises ``SchedulerBusy`` when the line is full."""
        ticket = Ticket(len(rows), settings, cancel, on_answer)
        live = [LiveRow(row, ticket, self.loaded, self.eos_ids) for row in rows]
        with self._lock:
            if len(self._waiting) + len(live) > self.config.max_waiting:
                raise SchedulerBusy(
                    f"The server is busy: {counted(len(self._waiting), 'answer')} waiting for this model already "
                    f"(at most {self.config.max_waiting}). Try again shortly."
                )
            self._waiting.extend(live)
            if live:
                self.loaded.serving = True  # the model manager releases no base that rows run on or wait for
            if self._worker is None and live:
                self._worker = threading.Thread(target=self._work, name="medalpaca-batch", daemon=True)
                self._worker.start()
        return ticket

    def run(
        self,
        rows: list[Row],
        settings: GenerationSettings,
        cancel: threading.Event,
        on_answer: Callable[[Answer], None],
    ) -> None:
        """Submit ``rows`` and block until every one of them has ended."""
        self.submit(rows, settings, cancel, on_answer).done.wait()

    def _work(self) -> None:
        import torch

        on_cpu = self.loaded.model.device.type == "cpu"
        try:
            with torch.inference_mode(), CPU_SHARE.generation() if on_cpu else nullcontext():
                while self._step(on_cpu):
                    pass
        except BaseException as error:  # never leave a ticket waiting for ever
            self._fail_all(f"{type(error).__name__}: {error}")
            raise

    def _step(self, on_cpu: bool) -> bool:
        """One step: admit, prefill, decode, leave. False once nothing is running or waiting (the worker ends)."""
        if on_cpu:
            CPU_SHARE.apply()
        joining = self._admit()
        with self.loaded.lock:
            self._leave()  # rows cancelled since the last step compute nothing more
            if joining:
                self._prefill(joining)
                self._leave()
            if self._running:
                self._decode()
                self._leave()
        self.steps += 1
        if self.on_step is not None:
            self.on_step(self.steps, [row.row.variant_id for row in self._running])
        with self._lock:
            if self._waiting or self._running:
                return True
            self._worker = None
            self.loaded.serving = False
            return False

    def _admit(self) -> list[LiveRow]:
        """Waiting rows that join now, oldest first; cancelled ones leave the line, unservable ones fail."""
        joining = []
        with self._lock:
            while self._waiting and len(self._running) + len(joining) < self.config.max_rows:
                joining.append(self._waiting.popleft())
        servable = []
        for row in joining:
            problem = self._problem(row)
            if problem:
                row.fail(problem)
            elif row.ticket.cancel.is_set():
                row.leave()
            else:
                servable.append(row)
        return servable

    def _problem(self, row: LiveRow) -> str | None:
        """Why ``row`` cannot join the batch, if it cannot."""
        window, needed = self.loaded.context_window, len(row.row.prompt_ids) + row.settings.max_new_tokens
        if needed > window:
            return (
                f"The prompt is {len(row.row.prompt_ids):,} tokens; with {row.settings.max_new_tokens} new tokens "
                f"it does not fit the model's context window of {window:,} tokens"
            )
        adapters = getattr(self.loaded.model, "peft_config", {})
        if row.row.adapter != BASE_ROW and row.row.adapter not in adapters:
            return f"{row.row.variant_id}: its adapter was unloaded while the request waited; ask again"
        return None

    def _forward(self, rows: list[LiveRow], **inputs: Any) -> Any:
        """The model's logits for the last position of every row, each row with its own adapter."""
        with self.loaded.rows_adapters([row.row.adapter for row in rows]) as adapter_kwargs:
            output = self.loaded.model(**inputs, use_cache=True, logits_to_keep=1, **adapter_kwargs)
        return output

    def _prefill(self, joining: list[LiveRow]) -> None:
        import torch

        device = self.loaded.model.device
        ids, mask = left_pad([row.row.prompt_ids for row in joining], self.loaded.tokenizer.pad_token_id)
        mask = torch.tensor(mask, device=device)
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        try:
            output = self._forward(
                joining, input_ids=torch.tensor(ids, device=device), attention_mask=mask, position_ids=positions
            )
        except Exception as error:  # the joining rows fail; the running ones go on
            for row in joining:
                row.fail(f"{type(error).__name__}: {error}")
            return
        for row, logits in zip(joining, output.logits[:, -1], strict=True):
            row.take(logits)
        joined = BatchCache(output.cache, mask)
        if self._batch is None:
            self._batch = joined
        else:
            self._batch.merge(joined)
        self._running.extend(joining)

    def _decode(self) -> None:
        import torch

        batch, rows = self._batch, self._running
        positions = batch.positions()
        tokens = torch.tensor([[row.pending] for row in rows], device=positions.device)
        try:
            output = self._forward(
                rows,
                input_ids=tokens,
                attention_mask=batch.grow(),
                position_ids=positions,
                cache=batch.cache,
            )
        except Exception as error:  # the batch's state is unknown now: its rows fail, the waiting ones start afresh
            self._running, self._batch = [], None
            for row in rows:
                row.fail(f"{type(error).__name__}: {error}")
            return
        for row, logits in zip(rows, output.logits[:, -1], strict=True):
            row.take(logits)

    def _leave(self) -> None:
        """Finished and cancelled rows leave the batch (and its cache); the base stops serving once nothing is left."""
        leaving = [row.leaving for row in self._running]  # read once: a cancel may come in the meantime
        if not any(leaving):
            return
        keep = [index for index, gone in enumerate(leaving) if not gone]
        gone = [row for row, left in zip(self._running, leaving, strict=True) if left]
        self._running = [self._running[index] for index in keep]
        if keep:
            self._batch.keep(keep)
        else:
            self._batch = None
        with self._lock:
            self.loaded.serving = bool(self._running or self._waiting)
        for row in gone:  # after the state above: whoever waits for these rows finds the scheduler as they left it
            row.leave()

    def _fail_all(self, message: str) -> None:
        with self._lock:
            rows, self._running, self._batch = [*self._running, *self._waiting], [], None
            self._waiting.clear()
            self._worker = None
            self.loaded.serving = False
        for row in rows:
            row.fail(message)


class Schedulers:
    """The scheduler of each loaded base, made on first use; it lives while a request or its worker holds it,
    so a base the model manager released is not kept in memory by its scheduler."""

    def __init__(self, config: SchedulerConfig | None = None):
        self.config = config or SchedulerConfig()
        self._by_model: weakref.WeakValueDictionary[int, BatchScheduler] = weakref.WeakValueDictionary()
        self._lock = threading.Lock()

    def of(self, loaded: Any) -> BatchScheduler:
        with self._lock:
            scheduler = self._by_model.get(id(loaded))
            if scheduler is None:
                scheduler = self._by_model[id(loaded)] = BatchScheduler(loaded, self.config)
            return scheduler
