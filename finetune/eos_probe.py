"""Does the model still know where an answer ends? P(EOS) right after validation answers.

The validation loss averages over every answer token, so a run that unlearns the one token that ends
an answer barely moves it (round 2's adapters: loss down 15%, P(EOS) 0.027, answers looping to the
token limit). This probe is logged beside the loss at every evaluation (``eval_eos_prob`` in the loss
log, a second axis on the curve), so a run that forgets how to stop shows it while it trains.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

PROBE_EXAMPLES = 64  # spread over the length-sorted validation split: a few seconds per evaluation
PROBE_BATCH = 8


@dataclass(frozen=True)
class EosProbe:
    """Mean probability of EOS at the position that ends each probed example's gold answer."""

    examples: tuple[tuple[int, ...], ...]  # input ids ending with the EOS label
    eos_id: int

    @classmethod
    def from_validation(cls, validation: list[dict[str, list[int]]], eos_id: int) -> EosProbe | None:
        """Up to ``PROBE_EXAMPLES`` validation examples whose answer fits and ends with EOS, evenly spread."""
        ended = [tuple(e["input_ids"]) for e in validation if e["labels"][-1] == eos_id]
        if not ended:
            return None
        step = max(1, len(ended) // PROBE_EXAMPLES)
        return cls(tuple(ended[::step][:PROBE_EXAMPLES]), eos_id)

    @torch.no_grad()
    def __call__(self, model: Any) -> float:
        was_training = model.training
        model.eval()
        try:
            probabilities = [p for i in range(0, len(self.examples), PROBE_BATCH) for p in self._batch(model, i)]
        finally:
            model.train(was_training)
        return sum(probabilities) / len(probabilities)

    def _batch(self, model: Any, start: int) -> list[float]:
        batch = self.examples[start : start + PROBE_BATCH]
        width = max(len(ids) for ids in batch)
        ids = torch.tensor([list(x) + [self.eos_id] * (width - len(x)) for x in batch], device=model.device)
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in batch], device=model.device)
        logits = model(input_ids=ids, attention_mask=mask).logits
        ends = torch.tensor([len(x) - 2 for x in batch], device=model.device)  # the position that predicts EOS
        last = logits[torch.arange(len(batch), device=model.device), ends].float()
        return torch.softmax(last, dim=-1)[:, self.eos_id].tolist()
