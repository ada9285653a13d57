"""One row's choice of its next token, with its own settings and its own random generator.

Rows of a running batch come from different requests: each keeps its temperature, top-p, top-k,
repetition penalty and minimum length, and samples from a ``torch.Generator`` seeded with its own
seed, so that a seeded answer is the same whoever else is in the batch (one global seed, as
``generate`` uses, would make every row depend on the others' draws). The logits processors are
transformers' own, applied to the row's slice of the batch's logits.
"""

from __future__ import annotations

from typing import Any

from .settings import GenerationSettings


class RowSampler:
    """Turns a row's logits into its next token."""

    def __init__(self, settings: GenerationSettings, eos_ids: set[int], device: Any):
        import torch
        from transformers.generation.logits_process import (
            LogitsProcessorList,
            RepetitionPenaltyLogitsProcessor,
            TemperatureLogitsWarper,
            TopKLogitsWarper,
            TopPLogitsWarper,
        )

        self.settings, self.eos = settings, sorted(eos_ids)
        processors: list[Any] = []
        if settings.repetition_penalty != 1.0:
            processors.append(RepetitionPenaltyLogitsProcessor(settings.repetition_penalty))
        if settings.do_sample:
            processors.append(TemperatureLogitsWarper(settings.temperature))
            if settings.top_k:
                processors.append(TopKLogitsWarper(settings.top_k))
            if settings.top_p < 1:
                processors.append(TopPLogitsWarper(settings.top_p))
        self.processors = LogitsProcessorList(processors)
        self.generator = torch.Generator(device=device)
        if settings.seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(settings.seed)

    def choose(self, logits: Any, ids: list[int], new_tokens: int) -> int:
        """The token after ``ids`` (prompt and answer so far, ``new_tokens`` of them new), from its (vocab,) logits."""
        import torch

        scores = logits.float().unsqueeze(0)
        if new_tokens < self.settings.min_new_tokens:
            scores[:, self.eos] = -float("inf")
        if self.processors:
            scores = self.processors(torch.tensor([ids], device=scores.device), scores)
        if not self.settings.do_sample:
            return int(scores.argmax())
        probabilities = torch.softmax(scores, dim=-1)
        return int(torch.multinomial(probabilities, 1, generator=self.generator))
