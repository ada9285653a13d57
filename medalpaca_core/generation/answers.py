"""What a generation reports: ``Answer`` snapshots with their ``Status``, ``Stats`` and ``FinishReason``.

Plain values, so the page, exports and votes read answers without importing the torch loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ..text.plural import counted


class Unaskable(str):
    """An answer's error that is its question's, not the model's: the prompt does not fit the model's context window.
    An evaluation skips that question with this reason and goes on, unlike any other failure, which ends the
    variant's run."""


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
            counted(self.new_tokens, "token"),
            f"{self.tokens_per_s:.1f} tok/s",
            f"wall {self.wall_s:.1f} s",
            f"{self.memory_bytes / 1024**2:.0f} MB ({self.quantization})" if memory else self.quantization,
            f"ended: {self.finish_reason}",
        ]
        if self.truncated:
            parts.append("input truncated to fit the context window")
        return " · ".join(parts)


@dataclass(frozen=True)
class Prompt:
    """The prompt a variant was given: its text as the model read it (special tokens included), its length in
    tokens, whether its context was cut to fit. Made once, from the very ids generation got, so that no one
    fits the prompt a second time to show it."""

    text: str
    tokens: int
    truncated: bool

    def caption(self) -> str:
        cut = "context truncated to fit the context window" if self.truncated else "not truncated"
        return f"{self.tokens:,} prompt tokens, {cut}"


@dataclass(frozen=True)
class Answer:
    """One variant's answer as it streams."""

    variant_id: str
    text: str = ""
    status: Status = Status.QUEUED
    error: str | None = None
    stats: Stats | None = None
    prompt: Prompt | None = None  # None until fitted, and for what nothing here prompted (remote, failed)

    @property
    def finished(self) -> bool:
        return self.status in (Status.DONE, Status.ERROR)
