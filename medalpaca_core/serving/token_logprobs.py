"""Every token's log-probability in a sequence, its top alternatives, and the tokens a model adds after it.

The OpenAI API's legacy ``echo`` + ``logprobs`` (what lm-evaluation-harness's loglikelihood tasks
ask a server for) and chat ``logprobs`` need ``log p(token | the tokens before it)`` at every
position, not only generated text. Rows go through ``evaluation.forward``'s left-padded forward
pass (float32 vocabulary projection, each row's adapter), chunked so that the
``[rows, width, vocabulary]`` log-softmax stays bounded. A greedy one-token continuation, which is
what the harness asks for beside the echo, is read from the same pass: the most probable token
after the last position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..evaluation.forward import forward_logprobs
from ..generation.cpu_share import CPU_SHARE
from ..generation.decoding import eos_token_ids
from ..generation.settings import GenerationSettings

CHUNK_TOKENS = 2048  # padded tokens per forward pass: 2,048 x a 49k vocabulary in float32 is 400 MB


@dataclass(frozen=True)
class TokenLogprob:
    """One token of a row: its log-probability given the tokens before it (None for a row's first token,
    which nothing predicts) and the most probable tokens at its position, best first."""

    token: int
    logprob: float | None
    top: tuple[tuple[int, float], ...] = ()


def _chunks(rows: list[list[int]], budget: int = CHUNK_TOKENS) -> list[list[int]]:
    """Indexes of consecutive rows, grouped so that rows x the widest of them stays within ``budget``."""
    groups: list[list[int]] = []
    width = 0
    for index, ids in enumerate(rows):
        width = max(width, len(ids))
        if groups and len(groups[-1]) + 1 <= budget // width:
            groups[-1].append(index)
        else:
            groups.append([index])
            width = len(ids)
    return groups


def _row(row_logprobs: Any, ids: list[int], top: int, greedy_next: bool) -> list[TokenLogprob]:
    """The entries of one row from its slice of the forward pass (plus the argmax token after it)."""
    import torch

    keep = row_logprobs.shape[0]
    predictors = row_logprobs[keep - len(ids) :]  # position j predicts token j + 1
    targets = torch.tensor(ids[1:], device=row_logprobs.device)
    chosen = predictors[:-1].gather(-1, targets[:, None]).squeeze(-1).tolist()
    values, indices = predictors.topk(max(top, 1), dim=-1)
    best = indices[-1, 0].item(), values[-1, 0].item()
    rows = zip(indices[:, :top].tolist(), values[:, :top].tolist(), strict=True)
    tops = [tuple(zip(tokens, logprobs, strict=True)) for tokens, logprobs in rows]
    entries = [TokenLogprob(ids[0], None)]
    entries += [TokenLogprob(token, chosen[n], tops[n]) for n, token in enumerate(ids[1:])]
    if greedy_next:
        entries.append(TokenLogprob(best[0], best[1], tops[-1]))
    return entries


def score(
    loaded: Any, adapter: str, rows: list[list[int]], top: int, greedy_next: bool = False
) -> list[list[TokenLogprob]]:
    """Every token of every row scored by the model (one ``adapter`` for all), with ``top`` alternatives;
    with ``greedy_next``, each row also gets the most probable next token as its last entry."""
    scored: list[list[TokenLogprob]] = []
    for group in _chunks(rows):
        width = max(len(rows[index]) for index in group)
        logprobs = forward_logprobs(loaded, [(rows[index], adapter) for index in group], keep=width)
        scored += [_row(logprobs[n], rows[index], top, greedy_next) for n, index in enumerate(group)]
    return scored


def continuation(loaded: Any, adapter: str, ids: list[int], settings: GenerationSettings) -> list[int]:
    """The tokens the model adds after ``ids`` (an end-of-sequence token included), from one ``generate``."""
    import torch

    eos = sorted(eos_token_ids(loaded.model, loaded.tokenizer))
    with loaded.lock, loaded.rows_adapters([adapter]) as kwargs, torch.inference_mode(), CPU_SHARE.generation():
        if settings.seed is not None:
            torch.manual_seed(settings.seed)
        input_ids = torch.tensor([ids], device=loaded.model.device)
        output = loaded.model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            pad_token_id=loaded.tokenizer.pad_token_id,
            eos_token_id=eos,
            **settings.generate_kwargs(),
            **kwargs,
        )
    return output[0, len(ids) :].tolist()


def complete(
    loaded: Any, adapter: str, prompts: list[list[int]], settings: GenerationSettings, new_tokens: int, top: int
) -> list[list[TokenLogprob]]:
    """Each prompt followed by up to ``new_tokens`` of the model's tokens, every token scored.

    A greedy single token (the harness's request) comes from the scoring pass itself; anything else is
    generated first, then scored in one pass with the prompt.
    """
    if new_tokens == 1 and not settings.do_sample:
        return score(loaded, adapter, prompts, top, greedy_next=True)
    if new_tokens:
        prompts = [ids + continuation(loaded, adapter, ids, settings) for ids in prompts]
    return score(loaded, adapter, prompts, top)
