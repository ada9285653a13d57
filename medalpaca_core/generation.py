"""What generation takes and gives: settings and presets, answers as they stream and what they cost, rows.

The running batch that produces them is ``scheduler``; this module holds the vocabulary every layer
shares (the app, the API, evaluation and exports read ``Answer`` and ``Stats``), and the pieces of a
row's decoding that need no batch: the incremental decoder and the tokens that end an answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


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


def left_pad(rows: list[Row], pad_id: int) -> tuple[list[list[int]], list[list[int]]]:
    """The rows' prompt ids padded on the left to one width, and their attention mask (0 on the padding)."""
    width = max(len(row.prompt_ids) for row in rows)
    ids = [[pad_id] * (width - len(row.prompt_ids)) + row.prompt_ids for row in rows]
    mask = [[0] * (width - len(row.prompt_ids)) + [1] * len(row.prompt_ids) for row in rows]
    return ids, mask


def eos_token_ids(model: Any, tokenizer: Any) -> set[int]:
    """Every token that ends an answer: the tokenizer's EOS and the model's generation config's."""
    configured = getattr(model.generation_config, "eos_token_id", None)
    configured = configured if isinstance(configured, list) else [configured]
    return {token for token in [tokenizer.eos_token_id, *configured] if token is not None}
