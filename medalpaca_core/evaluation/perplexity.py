"""Held-out loss: how well each variant predicts the answers of Medical Meadow-style Q&A pairs.

Accuracy on a few dozen exam questions moves little for a small model; the mean token loss on
held-out answers shows directly what fine-tuning on Medical Meadow bought. Each pair is
rendered exactly as in training and inference (``medalpaca_core.text.prompts``, the variant's own
template) and only the answer's tokens are scored -- the prompt is given, not predicted. Long
answers (some are over 10,000 characters) are cut to their first ``max_answer_tokens`` tokens,
so a handful of them cannot dominate the mean; the end-of-text token is not scored.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine import Studio
from ..text.prompts import PromptError, encode, render
from ..text.records import QAPair, RecordError, Source, load_records
from .exams import ExamError
from .forward import continuation_ids, forward_logprobs, target_logprobs

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Loss:
    """Token-weighted mean negative log-likelihood of the answers (nats per token)."""

    variant_id: str
    pairs: int
    tokens: int
    total_nll: float
    skipped: int = 0  # pairs whose prompt alone does not fit the context window

    @property
    def mean_loss(self) -> float:
        return self.total_nll / self.tokens if self.tokens else float("nan")

    @property
    def perplexity(self) -> float:
        return math.exp(self.mean_loss) if self.tokens else float("nan")


def load_pairs(path: str | Path, skip: int = 0, limit: int | None = None, skip_malformed: bool = False) -> list[QAPair]:
    """Medical Meadow-format records (JSON list or JSONL) through the reader fine-tuning uses:
    ``limit`` pairs after ``skip``. A malformed record is an error naming it, or with
    ``skip_malformed`` a logged skip -- the same rule as in training."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ExamError(f"{path.name}: no such data file")
    try:
        pairs = load_records([Source(str(path))], skip_malformed=skip_malformed).pairs
    except RecordError as error:
        raise ExamError(str(error)) from None
    selected = pairs[skip : None if limit is None else skip + limit]
    if not selected:
        raise ExamError(f"{path.name}: no records left after skipping {skip} of {len(pairs)}")
    return selected


def encoded_pairs(template: str, tokenizer: Any, pairs: list[QAPair]) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, gold answer ids) of every pair, rendered in ``template`` exactly as in training."""
    encoded = []
    for pair in pairs:
        prompt = render(template, pair.parts(), tokenizer)
        prompt_ids = encode(template, prompt, tokenizer)
        encoded.append((prompt_ids, continuation_ids(tokenizer, template, prompt, prompt_ids, pair.output)))
    return encoded


def variant_loss(
    studio: Studio,
    variant_id: str,
    pairs: list[QAPair],
    max_answer_tokens: int = 256,
    batch_size: int = 4,
    progress: Progress | None = None,
) -> Loss:
    """The mean answer-token loss of one variant over ``pairs``."""
    if max_answer_tokens < 1 or batch_size < 1:
        raise ValueError("max_answer_tokens and batch_size must be at least 1")
    variant = studio.variant(variant_id)
    loaded, adapter = studio.acquire(variant)
    rows: list[tuple[list[int], int]] = []  # (prompt + answer ids, answer length)
    skipped = 0
    for prompt_ids, answer in encoded_pairs(variant.template, loaded.tokenizer, pairs):
        answer = answer[:max_answer_tokens][: max(0, loaded.context_window - len(prompt_ids))]
        if not answer:
            skipped += 1
            continue
        rows.append((prompt_ids + answer, len(answer)))
    if not rows:
        raise PromptError(f"{variant.id}: no pair fits the context window of {loaded.context_window:,} tokens")
    rows.sort(key=lambda row: len(row[0]))  # similar lengths share a batch: little padding
    tokens, total = 0, 0.0
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        keep = max(count for _, count in batch) + 1
        logprobs = forward_logprobs(loaded, [(ids, adapter) for ids, _ in batch], keep)
        for index, (ids, count) in enumerate(batch):
            total -= sum(target_logprobs(logprobs[index], ids, count))
            tokens += count
        if progress is not None:
            progress(min(start + batch_size, len(rows)), len(rows), variant.id)
    return Loss(variant.id, len(rows), tokens, total, skipped)
