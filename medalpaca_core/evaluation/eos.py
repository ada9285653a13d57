"""Teacher-forced stopping: how likely a variant is to end right after a complete gold answer.

Generation shows *whether* a variant stops; this shows *why not*, without sampling noise. Each
held-out pair is rendered in the variant's template, followed by its whole gold answer, and one
forward pass gives the next token's distribution; the probability of stopping is the mass on the
tokens that end an answer in generation (``eos_token_ids``: the tokenizer's and the generation
config's EOS). A fine-tune that learnt to stop puts most of its mass there; one that unlearnt it
(issue 26's adapters: 0.027) continues with a newline and another sentence. Only pairs whose prompt,
answer and EOS fit in ``cutoff`` tokens count: fine-tuning cuts longer examples at its cutoff (256),
EOS and all, so their end was never taught (``finetune.eos_probe`` takes the same examples while
training); pairs that do not fit get None.
"""

from __future__ import annotations

from ..engine import Studio
from ..generation.decoding import eos_token_ids
from ..text.records import QAPair
from .forward import forward_logprobs
from .perplexity import encoded_pairs


def eos_probabilities(
    studio: Studio, variant_id: str, pairs: list[QAPair], cutoff: int = 256, batch_size: int = 4
) -> list[float | None]:
    """P(end of answer | prompt + gold answer) for every pair, in order; None where it does not fit."""
    if batch_size < 1 or cutoff < 2:
        raise ValueError(f"batch_size must be at least 1 and cutoff at least 2, got {batch_size} and {cutoff}")
    variant = studio.variant(variant_id)
    loaded, adapter = studio.acquire(variant)
    stops = sorted(eos_token_ids(loaded.model, loaded.tokenizer))
    rows = [prompt + answer for prompt, answer in encoded_pairs(variant.template, loaded.tokenizer, pairs)]
    room = min(cutoff - 1, loaded.context_window)  # the EOS takes the last place
    fitting = sorted((i for i, ids in enumerate(rows) if len(ids) <= room), key=lambda i: len(rows[i]))
    found: list[float | None] = [None] * len(rows)
    for start in range(0, len(fitting), batch_size):  # similar lengths share a batch: little padding
        batch = fitting[start : start + batch_size]
        logprobs = forward_logprobs(loaded, [(rows[i], adapter) for i in batch], keep=1)
        for index, probability in zip(batch, logprobs[:, -1, stops].exp().sum(-1).tolist(), strict=True):
            found[index] = probability
    return found
