"""Held-out loss: how well each variant predicts the answers of Medical Meadow-style Q&A pairs.

Accuracy on a few dozen exam questions moves little for a small model; the mean token loss on
held-out answers shows directly what fine-tuning on Medical Meadow bought. Each pair is
rendered exactly as in training and inference (``medalpaca_core.prompts``, the variant's own
template) and only the answer's tokens are scored -- the prompt is given, not predicted. Long
answers (some are over 10,000 characters) are cut to their first ``max_answer_tokens`` tokens,
so a handful of them cannot dominate the mean; the end-of-text token is not scored.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..engine import Studio, encode
from ..prompts import DEFAULT_INSTRUCTION, PromptError, PromptParts, render
from .exams import ExamError, read_text
from .forward import continuation_ids, forward_logprobs, target_logprobs

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class QAPair:
    instruction: str
    input: str
    output: str


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


def load_pairs(path: str | Path, skip: int = 0, limit: int | None = None) -> list[QAPair]:
    """A JSON list (or JSONL) of ``{"instruction", "input", "output"}``: ``limit`` pairs after ``skip``.

    Records with an empty input or output say nothing about answering and are left out.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ExamError(f"{path}: no such data file")
    text = read_text(path)
    try:
        if path.suffix == ".jsonl":
            entries = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            entries = json.loads(text)
    except json.JSONDecodeError as error:
        raise ExamError(f"{path} is not valid JSON: {error.msg} at line {error.lineno}") from error
    if not isinstance(entries, list) or not entries:
        raise ExamError(f"{path}: expected a non-empty list of instruction/input/output records")
    pairs = []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in ("input", "output")):
            raise ExamError(f"{path}, record {number}: expected an object with 'input' and 'output' text")
        if entry["input"].strip() and entry["output"].strip():
            pairs.append(QAPair(entry.get("instruction") or DEFAULT_INSTRUCTION, entry["input"], entry["output"]))
    selected = pairs[skip : None if limit is None else skip + limit]
    if not selected:
        raise ExamError(f"{path}: no records left after skipping {skip} of {len(pairs)}")
    return selected


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
    variant = studio.registry.get(variant_id)
    loaded, adapter = studio.acquire(variant)
    tokenizer = loaded.tokenizer
    rows: list[tuple[list[int], int]] = []  # (prompt + answer ids, answer length)
    skipped = 0
    for pair in pairs:
        prompt = render(variant.template, PromptParts(question=pair.input, instruction=pair.instruction), tokenizer)
        prompt_ids = encode(variant.template, prompt, tokenizer)
        answer = continuation_ids(tokenizer, variant.template, prompt, prompt_ids, pair.output)[:max_answer_tokens]
        answer = answer[: max(0, loaded.context_window - len(prompt_ids))]
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
