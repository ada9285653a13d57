"""Streaming generation: one batched ``generate`` for every variant that shares a base.

Each step, a stopping criterion sees the newest token of every row; it decodes it, cuts the
answer at template markers, records timing, reports the new text and tells ``generate`` which
rows are finished. That single hook gives token-by-token streaming for a whole batch (the stock
``TextIteratorStreamer`` handles one row only), per-row stop strings, and instant cancellation.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .cpu_share import CPU_SHARE
from .prompts import cut_response


class SettingsError(ValueError):
    """Generation settings out of range."""


MAX_SEED = 2**32 - 1  # torch.manual_seed overflows on larger seeds


@dataclass(frozen=True)
class GenerationSettings:
    """Decoding settings. ``temperature`` 0 means greedy; above 0 turns sampling on."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    seed: int | None = None
    min_new_tokens: int = 0  # answers never end sooner (benchmarks use it for fixed-length decodes)

    @property
    def do_sample(self) -> bool:
        return self.temperature > 0

    def validated(self, max_new_tokens_limit: int = 2048) -> GenerationSettings:
        checks = [
            (1 <= self.max_new_tokens <= max_new_tokens_limit, f"max_new_tokens must be 1..{max_new_tokens_limit}"),
            (0 <= self.min_new_tokens <= self.max_new_tokens, "min_new_tokens must be 0..max_new_tokens"),
            (0 <= self.temperature <= 5, "temperature must be between 0 and 5"),
            (0 < self.top_p <= 1, "top_p must be in (0, 1]"),
            (self.top_k >= 0, "top_k must be 0 (off) or positive"),
            (0.5 <= self.repetition_penalty <= 2, "repetition_penalty must be between 0.5 and 2"),
            (self.seed is None or 0 <= self.seed <= MAX_SEED, f"seed must be 0..{MAX_SEED}"),
        ]
        problems = [message for ok, message in checks if not ok]
        if problems:
            raise SettingsError("Invalid generation settings: " + "; ".join(problems))
        return self

    def generate_kwargs(self, done: int = 0) -> dict[str, Any]:
        """Arguments for ``model.generate`` once ``done`` tokens are generated; sampling knobs only when sampling."""
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens - done, "do_sample": self.do_sample}
        if self.min_new_tokens > done:
            kwargs["min_new_tokens"] = self.min_new_tokens - done
        if self.do_sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k or None)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if self.repetition_penalty != 1.0:
            kwargs["repetition_penalty"] = self.repetition_penalty
        return kwargs


PRESETS: dict[str, GenerationSettings] = {
    "greedy": GenerationSettings(max_new_tokens=128),
    # The paper's evaluation settings.
    "sampling": GenerationSettings(max_new_tokens=128, temperature=0.4, top_p=0.9, top_k=50),
}


class Status(StrEnum):
    """Where an answer is; compares equal to its value, so stored and exported answers keep plain strings."""

    QUEUED = "queued"
    LOADING = "loading"
    GENERATING = "generating"
    DONE = "done"
    ERROR = "error"


class FinishReason(StrEnum):
    """Why an answer ended: EOS token, a template marker, the token limit, or Stop / a client gone."""

    EOS = "eos"
    STOP = "stop"
    LENGTH = "length"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Stats:
    """What one answer cost. ``tokens_per_s`` is the decode rate after the first token."""

    prompt_tokens: int
    new_tokens: int
    ttft_s: float | None
    wall_s: float
    memory_bytes: int
    quantization: str
    truncated: bool
    finish_reason: str  # a FinishReason; "" while the answer grows

    @property
    def tokens_per_s(self) -> float:
        if self.ttft_s is None or self.new_tokens < 2 or self.wall_s <= self.ttft_s:
            return 0.0
        return (self.new_tokens - 1) / (self.wall_s - self.ttft_s)

    def summary(self, memory: bool = True) -> str:
        """The one line every view shows (status lines, the CLI, exports; exports leave out the memory)."""
        ttft = f"{self.ttft_s:.2f} s" if self.ttft_s is not None else "-"
        parts = [
            f"first token {ttft}",
            f"{self.new_tokens} tokens",
            f"{self.tokens_per_s:.1f} tok/s",
            f"wall {self.wall_s:.1f} s",
            f"{self.memory_bytes / 1024**2:.0f} MB ({self.quantization})" if memory else self.quantization,
            f"ended: {self.finish_reason}",
        ]
        if self.truncated:
            parts.append("input truncated to fit the context window")
        return " · ".join(parts)


@dataclass(frozen=True)
class Answer:
    """One variant's answer as it streams."""

    variant_id: str
    text: str = ""
    status: Status = Status.QUEUED
    error: str | None = None
    stats: Stats | None = None

    @property
    def finished(self) -> bool:
        return self.status in (Status.DONE, Status.ERROR)


@dataclass(frozen=True)
class Row:
    """One row of a batch: a variant's prompt tokens and the adapter that answers it."""

    variant_id: str
    prompt_ids: list[int]
    adapter: str
    template: str
    truncated: bool = False


class IncrementalDecoder:
    """The text of a growing token list, decoding only the newest tokens each step.

    Re-decoding the whole answer every step costs O(n) per token; decoding a short window and
    appending its new characters is O(1). The window starts one token back so that tokenizers
    which drop a leading space on the first token (sentencepiece) decode it right, and a step
    whose bytes end inside a UTF-8 character waits for the next token.
    """

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.text = ""
        self._prefix = 0
        self._read = 0

    def push(self, token: int) -> str:
        self.ids.append(token)
        before = self.tokenizer.decode(self.ids[self._prefix : self._read], skip_special_tokens=True)
        after = self.tokenizer.decode(self.ids[self._prefix :], skip_special_tokens=True)
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.text += after[len(before) :]
            self._prefix, self._read = self._read, len(self.ids)
        return self.text


class _RowTracker:
    """The per-step hook (a ``StoppingCriteria``) that turns new tokens into answers, with their stats.

    ``active`` maps batch positions to rows. When some rows finish while others go on, it stops the
    ``generate`` call, so that ``run_batch`` can drop the finished rows from the batch (and their
    KV cache) instead of computing padding for them until the longest answer ends.
    """

    def __init__(
        self,
        rows: list[Row],
        loaded: Any,
        settings: GenerationSettings,
        cancel: threading.Event,
        on_answer: Callable[[Answer], None],
    ):
        self.started = time.perf_counter()
        self.rows, self.loaded = rows, loaded
        self.eos_ids = eos_token_ids(loaded.model, loaded.tokenizer)
        self.settings, self.cancel, self.on_answer = settings, cancel, on_answer
        self.decoders = [IncrementalDecoder(loaded.tokenizer) for _ in rows]
        self.finish: list[FinishReason | None] = [None] * len(rows)
        self.first_token_at: list[float | None] = [None] * len(rows)
        self.active = list(range(len(rows)))

    def report(self, index: int, text: str, now: float) -> None:
        """Hand row ``index``'s answer so far, and what it cost, to ``on_answer``."""
        row, finish, first = self.rows[index], self.finish[index], self.first_token_at[index]
        stats = Stats(
            prompt_tokens=len(row.prompt_ids),
            new_tokens=len(self.decoders[index].ids),
            ttft_s=None if first is None else first - self.started,
            wall_s=now - self.started,
            memory_bytes=self.loaded.footprint,
            quantization=self.loaded.key.quantization,
            truncated=row.truncated,
            finish_reason=finish or "",
        )
        self.on_answer(Answer(row.variant_id, text, Status.DONE if finish else Status.GENERATING, None, stats))

    def _advance(self, index: int, token: int, now: float) -> None:
        if self.first_token_at[index] is None:
            self.first_token_at[index] = now
        decoder = self.decoders[index]
        if token in self.eos_ids:
            self.finish[index] = FinishReason.EOS
        else:
            decoder.push(token)
        text, hit_marker = cut_response(self.rows[index].template, decoder.text)
        if hit_marker and self.finish[index] is None and len(decoder.ids) >= self.settings.min_new_tokens:
            self.finish[index] = FinishReason.STOP
        if self.finish[index] is None and len(decoder.ids) >= self.settings.max_new_tokens:
            self.finish[index] = FinishReason.LENGTH
        self.report(index, text, now)

    def __call__(self, input_ids: Any, scores: Any = None, **kwargs: Any) -> Any:
        import torch

        now = time.perf_counter()
        for index, token in zip(self.active, input_ids[:, -1].tolist(), strict=True):
            if self.finish[index] is None:
                self._advance(index, token, now)
        stop = self.cancel.is_set() or any(self.finish[index] is not None for index in self.active)
        return torch.full((len(self.active),), stop, dtype=torch.bool, device=input_ids.device)

    def going_on(self) -> list[int]:
        """Batch positions of the rows still answering."""
        return [position for position, index in enumerate(self.active) if self.finish[index] is None]

    def cancel_unfinished(self) -> None:
        """Rows that ended without a reason of their own were cancelled: say so, with their text so far."""
        now = time.perf_counter()
        for index, reason in enumerate(self.finish):
            if reason is None:
                self.finish[index] = FinishReason.CANCELLED
                text, _ = cut_response(self.rows[index].template, self.decoders[index].text)
                self.report(index, text, now)


def _left_pad(rows: list[Row], pad_id: int) -> tuple[list[list[int]], list[list[int]]]:
    width = max(len(row.prompt_ids) for row in rows)
    ids = [[pad_id] * (width - len(row.prompt_ids)) + row.prompt_ids for row in rows]
    mask = [[0] * (width - len(row.prompt_ids)) + [1] * len(row.prompt_ids) for row in rows]
    return ids, mask


def _drop_rows(output: Any, attention_mask: Any, keep: list[int]) -> tuple[Any, Any, Any]:
    """The sequences, attention mask and KV cache of a finished ``generate`` call, for rows ``keep`` only.

    The cache holds every token but the last one sampled; the next ``generate`` call feeds that one
    and goes on, so nothing is computed twice.
    """
    import torch

    sequences = output.sequences
    rows = torch.tensor(keep, device=sequences.device)
    grown = sequences.shape[1] - attention_mask.shape[1]
    attention_mask = torch.cat([attention_mask, attention_mask.new_ones((attention_mask.shape[0], grown))], dim=1)
    cache = output.cache
    if cache is not None:  # a model run without a cache recomputes the prefix instead
        cache.batch_select_indices(rows)
    return sequences[rows], attention_mask[rows], cache


def eos_token_ids(model: Any, tokenizer: Any) -> set[int]:
    """Every token that ends an answer: the tokenizer's EOS and the model's generation config's."""
    configured = getattr(model.generation_config, "eos_token_id", None)
    configured = configured if isinstance(configured, list) else [configured]
    return {token for token in [tokenizer.eos_token_id, *configured] if token is not None}


def run_batch(
    loaded: Any,
    rows: list[Row],
    settings: GenerationSettings,
    cancel: threading.Event,
    on_answer: Callable[[Answer], None],
) -> None:
    """Answer every row in one batched ``generate``, calling ``on_answer`` each time an answer grows.

    Blocks: it generates in the caller's thread (the studio's thread for this base), which is the
    only thread that touches the model; errors propagate to the caller. ``loaded`` is a
    ``LoadedModel``; its lock is held for the whole call, since PEFT switches adapters with hooks
    that concurrent calls on the same model would trample.
    """
    import torch

    # the loaded model's generate imported this module; the top-level lazy ``transformers`` import is
    # not thread-safe on first use and would race with a load in another thread
    from transformers.generation.stopping_criteria import StoppingCriteriaList

    tracker = _RowTracker(rows, loaded, settings, cancel, on_answer)
    # thread teams are a CPU matter: a model on a GPU neither counts as a CPU generation nor pays a per-token check
    on_cpu = loaded.model.device.type == "cpu"
    criteria = [tracker, CPU_SHARE] if on_cpu else [tracker]
    with loaded.lock, torch.inference_mode(), CPU_SHARE.generation() if on_cpu else nullcontext():
        ids, mask = _left_pad(rows, loaded.tokenizer.pad_token_id)
        input_ids = torch.tensor(ids, device=loaded.model.device)
        attention_mask = torch.tensor(mask, device=loaded.model.device)
        width, cache = input_ids.shape[1], None
        if settings.seed is not None:
            torch.manual_seed(settings.seed)
        while True:  # one generate call, and one more each time finished rows leave the batch
            with loaded.rows_adapters([rows[index].adapter for index in tracker.active]) as adapter_kwargs:
                output = loaded.model.generate(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    cache=cache,
                    stopping_criteria=StoppingCriteriaList(criteria),
                    pad_token_id=loaded.tokenizer.pad_token_id,
                    eos_token_id=sorted(tracker.eos_ids),
                    return_dict_in_generate=True,
                    **settings.generate_kwargs(done=input_ids.shape[1] - width),
                    **adapter_kwargs,
                )
            keep = tracker.going_on()
            if not keep or cancel.is_set() or len(keep) == len(tracker.active):
                break  # all done, cancelled, or generate ended by itself
            input_ids, attention_mask, cache = _drop_rows(output, attention_mask, keep)
            tracker.active = [tracker.active[position] for position in keep]
    tracker.cancel_unfinished()
