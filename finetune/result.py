"""What a fine-tuning run produced and what it cost: returned by ``train.run``, written by ``card``.

Its own module so that ``card`` (which writes it down) and ``train`` (which makes it) do not import
each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class TrainResult:
    """What a run produced and what it cost (tokens/s over training steps only, without evaluation)."""

    output_dir: Path
    method: str
    steps: int
    train_loss: float | None  # transformers' mean over this run's own steps (after resumed_at)
    val_loss_before: float | None  # the base model: LoRA starts as a no-op, full starts as the base
    val_loss_after: float | None
    served_val_loss: float | None = None  # on the base precision the app serves it on, when not as trained
    eos_prob_before: float | None = None  # P(EOS) right after validation answers (eos_probe): the base
    eos_prob_after: float | None = None
    train_tokens: int = 0
    train_seconds: float = 0.0
    peak_rss_bytes: int = 0
    peak_gpu_bytes: int | None = None
    trainable_params: int = 0
    total_params: int = 0
    resumed_at: int = 0  # the checkpoint's step, when the run resumed one; tokens, time and train_loss come after it

    @property
    def tokens_per_s(self) -> float:
        return self.train_tokens / self.train_seconds if self.train_seconds else 0.0

    def summary(self) -> str:
        def loss(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.4f}"

        return (
            f"{self.method}: {self.steps} steps, train loss {loss(self.train_loss)}, validation loss "
            f"{loss(self.val_loss_before)} -> {loss(self.val_loss_after)}; {self.tokens_per_s:.0f} tokens/s, "
            f"peak RSS {self.peak_rss_bytes / 2**20:,.0f} MiB; saved to {self.output_dir}"
        )
