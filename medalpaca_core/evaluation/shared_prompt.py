"""Options scored after a prompt that is run once: one pass over the prompts, then passes over the options.

Scoring each option as its own row (prompt + option) runs a question's prompt once per option, and
the prompt is nearly all the tokens: a four-option question costs four prompts. Here each prompt
runs once (left-padded beside the other questions' prompts, positions from the attention mask, as
``forward_logprobs`` does) and keeps its KV cache; the last position's distribution scores every
option's first token. The cache's rows are then copied, one per option (``BatchCache.selected``),
and a pass feeds the options' remaining tokens at once, right-padded after the cached prompt, with
positions continuing from each prompt's own length. A pass copies at most ``COPY_BYTES`` of cache,
or as many rows as there were prompts where one row is larger (a 7B model's four copies of sixteen
prompts would take ~10 GB); a small model scores every option in one pass. Every pass applies each
row's adapter (an option row its prompt's), so the numbers are those of the full rows up to float
rounding. One-token options (letters) need no second pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..generation.batch_cache import BatchCache
from .forward import left_padded, mask_positions, rows_forward, scoring

Prompt = tuple[list[int], str]  # a prompt's token ids and the adapter that reads it


def option_logprobs(
    loaded: Any, prompts: Sequence[Prompt], options: Sequence[Sequence[list[int]]]
) -> list[list[list[float]]]:
    """The log-probability of every token of every option after its prompt: ``options[i]`` are prompt
    ``i``'s continuations (token ids, none empty); returns ``[prompt][option]`` lists of floats.

    Raises ``CacheLayoutError`` for a model whose cache cannot repeat rows (sliding windows, quantized
    caches): the caller scores full rows instead.
    """
    import torch

    input_ids, mask = left_padded(loaded, [ids for ids, _ in prompts])
    adapters = [adapter for _, adapter in prompts]
    owners = [index for index, continuations in enumerate(options) for _ in continuations]
    flat = [ids for continuations in options for ids in continuations]
    with scoring(loaded):
        prompt_pass = rows_forward(
            loaded,
            adapters,
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=mask_positions(mask),
            logits_to_keep=1,
            use_cache=any(len(ids) > 1 for ids in flat),
        )
        first = torch.log_softmax(prompt_pass.logits[:, -1].float(), dim=-1)
        prompt_cache = BatchCache(prompt_pass.cache, mask)
        size = _rows_per_pass(prompt_cache) if prompt_pass.cache is not None else len(flat)
        later = [_later_tokens(loaded, prompt_cache, part, adapters) for part in _parts(owners, flat, size)]
    scores: list[list[list[float]]] = [[] for _ in prompts]
    for owner, ids, values in zip(owners, flat, (values for part in later for values in part), strict=True):
        scores[owner].append([float(first[owner, ids[0]]), *values])
    return scores


Part = list[tuple[int, list[int]]]  # options scored in one pass: (the prompt it follows, its token ids)
COPY_BYTES = 2**30  # the most an option pass copies of the prompts' cache, unless that cache alone is larger


def _rows_per_pass(prompt_cache: BatchCache) -> int:
    """Option rows per pass: as many as ``COPY_BYTES`` of copied cache hold (all of a small model's options
    in one pass: each pass costs a fixed overhead per layer), at least as many as there are prompts."""
    return max(prompt_cache.rows, COPY_BYTES * prompt_cache.rows // max(1, prompt_cache.nbytes))


def _parts(owners: list[int], flat: list[list[int]], size: int) -> list[Part]:
    """The options in passes of ``size`` rows."""
    rows = list(zip(owners, flat, strict=True))
    return [rows[start : start + size] for start in range(0, len(rows), size)]


def _later_tokens(loaded: Any, prompt_cache: BatchCache, part: Part, adapters: list[str]) -> list[list[float]]:
    """The log-probabilities of each option's tokens after its first, from one pass over every option's
    tokens but its last (right-padded) after a copy of its prompt's cached keys and values."""
    import torch

    width = max(len(ids) for _, ids in part) - 1
    if width == 0:  # one-token options: the prompt pass scored them
        return [[] for _ in part]
    cache = prompt_cache.selected([owner for owner, _ in part])
    pad = loaded.tokenizer.pad_token_id
    device = cache.mask.device
    input_ids = torch.tensor([ids[:-1] + [pad] * (width + 1 - len(ids)) for _, ids in part], device=device)
    option_mask = torch.tensor([[1] * (len(ids) - 1) + [0] * (width + 1 - len(ids)) for _, ids in part], device=device)
    logits = rows_forward(
        loaded,
        [adapters[owner] for owner, _ in part],
        input_ids=input_ids,
        attention_mask=torch.cat([cache.mask, option_mask], dim=1),
        position_ids=cache.positions() + torch.arange(width, device=device),
        cache=cache.cache,
    ).logits
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    return [
        logprobs[row, : len(ids) - 1].gather(-1, torch.tensor(ids[1:], device=device)[:, None]).squeeze(-1).tolist()
        for row, (_, ids) in enumerate(part)
    ]
