"""The running batch's KV cache and attention mask, which rows join and leave between decoding steps.

``generate`` fixes its batch when it starts. Continuous batching needs three more operations on the
cache, all on whole rows and all exact (no row's keys or values change, so its answer does not):

- ``merge``: rows prefilled on their own join the running ones; the shorter side is padded on the
  left with masked columns, as ``generate`` pads a batch's prompts;
- ``keep``: finished or cancelled rows leave (their keys and values are freed);
- ``trim``: columns that every remaining row masks (the padding of rows that left) are dropped, so a
  long-running batch does not attend over ever more padding.

``selected`` copies some rows, repeated at will, into a new batch: log-likelihood scoring runs a prompt
once and scores each of its options on a copy of its row.

Positions are each row's own count of real tokens, never the cache's length: LLaMA's rotary
embeddings are applied before keys are cached, so a row keeps its positions when it moves.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any


class CacheLayoutError(RuntimeError):
    """A cache whose layers are not plain growing key/value tensors (sliding windows, quantized caches)."""


@dataclass
class BatchCache:
    """A ``DynamicCache`` of ``rows`` rows and its (rows, columns) attention mask; the cache holds every
    token of a row but the newest one, which the next step feeds."""

    cache: Any
    mask: Any

    @property
    def rows(self) -> int:
        return int(self.mask.shape[0])

    @property
    def nbytes(self) -> int:
        """The bytes of its keys and values."""
        return sum(layer.keys.nbytes + layer.values.nbytes for layer in _layers(self.cache))

    def positions(self) -> Any:
        """(rows, 1): the position of each row's next token (its real tokens so far)."""
        return self.mask.sum(dim=1, keepdim=True)

    def grow(self) -> Any:
        """The mask with one more column for the token this step feeds (it becomes the batch's mask)."""
        self.mask = _pad_columns(self.mask, 1, value=1, left=False)
        return self.mask

    def keep(self, rows: list[int]) -> None:
        """Keep only ``rows`` (indices into the batch), then drop the padding nobody needs any more."""
        import torch

        index = torch.tensor(rows, device=self.mask.device)
        self.mask = self.mask[index]
        for layer in _layers(self.cache):
            layer.keys, layer.values = layer.keys[index], layer.values[index]
        self.trim()

    def selected(self, rows: list[int]) -> BatchCache:
        """A new batch of ``rows`` (indices into this one, a row may come several times); this one is unchanged."""
        cache = copy.copy(self.cache)
        cache.layers = [copy.copy(layer) for layer in _layers(self.cache)]  # keep() replaces their tensors
        batch = BatchCache(cache, self.mask)
        batch.keep(rows)
        return batch

    def trim(self) -> None:
        """Drop leading columns that every row masks."""
        used = self.mask.any(dim=0).nonzero()
        start = int(used[0]) if len(used) else self.mask.shape[1]
        if start:
            self.mask = self.mask[:, start:]
            for layer in _layers(self.cache):
                layer.keys, layer.values = layer.keys[:, :, start:], layer.values[:, :, start:]

    def merge(self, other: BatchCache) -> None:
        """Append ``other``'s rows after these, both left-padded to the longer of the two."""
        import torch

        width = max(self.mask.shape[1], other.mask.shape[1])
        for mine, theirs in zip(_layers(self.cache), _layers(other.cache), strict=True):
            mine.keys = torch.cat([_pad_kv(mine.keys, width), _pad_kv(theirs.keys, width)])
            mine.values = torch.cat([_pad_kv(mine.values, width), _pad_kv(theirs.values, width)])
        masks = [_pad_columns(mask, width - mask.shape[1]) for mask in (self.mask, other.mask)]
        self.mask = torch.cat(masks)


def _layers(cache: Any) -> list[Any]:
    from transformers.cache_utils import DynamicLayer

    layers = list(cache.layers)
    odd = {type(layer).__name__ for layer in layers if type(layer) is not DynamicLayer}
    if odd:
        raise CacheLayoutError(f"Rows cannot join or leave a cache with {sorted(odd)} layers")
    return layers


def _pad_columns(mask: Any, count: int, value: int = 0, left: bool = True) -> Any:
    import torch

    if count <= 0:
        return mask
    pad = mask.new_full((mask.shape[0], count), value)
    return torch.cat([pad, mask] if left else [mask, pad], dim=1)


def _pad_kv(tensor: Any, width: int) -> Any:
    """(rows, heads, length, dim) padded with zeros on the left of ``length`` up to ``width``."""
    import torch

    missing = width - tensor.shape[2]
    if missing <= 0:
        return tensor
    pad = tensor.new_zeros((tensor.shape[0], tensor.shape[1], missing, tensor.shape[3]))
    return torch.cat([pad, tensor], dim=2)
