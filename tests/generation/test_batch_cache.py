"""A batch's rows copied into a new batch, repeated at will, leave the batch they came from as it was."""

import torch
from transformers.cache_utils import DynamicCache

from medalpaca_core.generation.batch_cache import BatchCache


def test_selected_rows_are_copies_and_the_batch_stays_as_it_was():
    keys, values = torch.randn(2, 1, 3, 4), torch.randn(2, 1, 3, 4)  # (rows, heads, columns, head dim)
    cache = DynamicCache()
    cache.update(keys, values, layer_idx=0)
    mask = torch.tensor([[0, 1, 1], [1, 1, 1]])  # the first row is left-padded
    batch = BatchCache(cache, mask)

    copies = batch.selected([1, 0, 1, 1])

    [layer] = copies.cache.layers
    assert torch.equal(layer.keys, keys[[1, 0, 1, 1]]) and torch.equal(layer.values, values[[1, 0, 1, 1]])
    assert copies.positions().squeeze(1).tolist() == [3, 2, 3, 3]
    assert batch.rows == 2 and torch.equal(cache.layers[0].keys, keys) and torch.equal(cache.layers[0].values, values)
