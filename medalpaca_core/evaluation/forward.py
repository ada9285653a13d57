"""Log-probabilities from one forward pass over rows that may each use a different LoRA adapter.

Both log-likelihood scoring and the held-out loss need ``log p(token | prefix)`` rather than
generated text. Rows are left-padded, with positions taken from the attention mask, so that
every row ends at the same place and only the last few positions need the vocabulary
projection (``logits_to_keep``), a large share of the cost for a small model with a 49k
vocabulary. Variants that share a base run in one batch: PEFT's ``adapter_names`` applies each
row's own adapter (``__base__`` for none), as in batched generation. The vocabulary projection
is computed in float32: bf16 logits come in steps of 1/8 at their usual size, enough to make
two options tie exactly.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..generation.cpu_share import CPU_SHARE
from ..generation.decoding import left_pad
from ..text.prompts import encode


def continuation_ids(tokenizer: Any, template: str, prompt_text: str, prompt_ids: list[int], text: str) -> list[int]:
    """The tokens ``text`` adds after the prompt, as the tokenizer splits the whole string.

    Tokenizing the whole string keeps merges at the boundary the way the model saw them in
    training; if the prompt's tokens are not a prefix of the whole (a merge across the
    boundary), ``text`` is tokenized on its own.
    """
    whole = encode(template, prompt_text + text, tokenizer)
    if whole[: len(prompt_ids)] == prompt_ids and len(whole) > len(prompt_ids):
        return whole[len(prompt_ids) :]
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _float32_projection(module: Any, inputs: tuple[Any, ...], output: Any) -> Any:
    """Forward hook: the output embedding's logits recomputed in float32."""
    import torch

    bias = None if module.bias is None else module.bias.float()
    return torch.nn.functional.linear(inputs[0].float(), module.weight.float(), bias)


@contextmanager
def scoring(loaded: Any) -> Iterator[None]:
    """Around one or more scoring passes: the model's lock (as for generation), no autograd, a CPU share and
    the output embedding in float32."""
    import torch

    with loaded.lock, torch.inference_mode(), CPU_SHARE.generation():
        head = loaded.model.get_output_embeddings()
        # a quantized head (bitsandbytes) stores no usable float weight; it keeps its own precision
        hook = head.register_forward_hook(_float32_projection) if type(head) is torch.nn.Linear else None
        try:
            yield
        finally:
            if hook is not None:
                hook.remove()


def rows_forward(loaded: Any, adapters: list[str], **inputs: Any) -> Any:
    """The model's output for a batch whose row ``i`` uses ``adapters[i]``; call it inside ``scoring``."""
    with loaded.rows_adapters(adapters) as kwargs:
        return loaded.model(**inputs, **kwargs)


def left_padded(loaded: Any, rows: Sequence[list[int]]) -> tuple[Any, Any]:
    """(input ids, attention mask) of ``rows`` padded on the left to the longest, so that all end together."""
    import torch

    padded, mask = left_pad(rows, loaded.tokenizer.pad_token_id)
    device = loaded.model.device
    return torch.tensor(padded, device=device), torch.tensor(mask, device=device)


def mask_positions(mask: Any) -> Any:
    """Each column's position in its row: the real tokens before it (padding counts none)."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def forward_logprobs(loaded: Any, rows: Sequence[tuple[list[int], str]], keep: int) -> Any:
    """Log-softmax over the vocabulary at the last ``keep`` positions of each (ids, adapter) row.

    Returns a float32 tensor ``[rows, keep, vocab]``; position ``keep - 1`` is the distribution
    of the token after each row.
    """
    import torch

    input_ids, mask = left_padded(loaded, [ids for ids, _ in rows])
    with scoring(loaded):
        logits = rows_forward(
            loaded,
            [adapter for _, adapter in rows],
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=mask_positions(mask),
            logits_to_keep=keep,
        ).logits
    return torch.log_softmax(logits.float(), dim=-1)


def target_logprobs(row_logprobs: Any, ids: list[int], count: int) -> list[float]:
    """Log-probabilities of the last ``count`` tokens of ``ids``, from its row of ``forward_logprobs``."""
    import torch

    keep = row_logprobs.shape[0]
    predictors = row_logprobs[keep - 1 - count : keep - 1]
    targets = torch.tensor(ids[-count:], device=row_logprobs.device)
    return predictors.gather(-1, targets[:, None]).squeeze(-1).tolist()
