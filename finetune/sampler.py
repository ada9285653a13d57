"""Training order: micro-batches of similar lengths, in an order that stays random across lengths.

Why not transformers' ``group_by_length``: its ``LengthGroupedSampler`` sorts each mega-batch of 50
optimizer steps from the longest example to the shortest, so a run goes through length *phases*.
On the Medical Meadow set every 50 steps begin with ~10 steps of answers cut at the cutoff (a third of
them without their EOS) and end with ~10 steps of one-line answers. A run that stops part-way through
a phase (the shipped adapters stopped at 0.29 epochs) learns whatever the last phase taught: the
adapters of round 2 gave EOS a probability of 0.027 after a complete answer, no more than the
untrained base, and looped to the token limit. A random order keeps the stop (0.33) but pads every
micro-batch to its longest member, halving tokens/s on a CPU.

This sampler keeps both: it sorts a large random pool by length only to *cut* it into micro-batches of
neighbours, then shuffles those micro-batches, so any window of steps sees the whole length
distribution while each forward pass pads little. ``longest_length_run`` is the measure the tests hold
it to.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

POOL_MICRO_BATCHES = 64  # micro-batches sorted together: larger pools pad less and stay just as random


class LengthBucketSampler(Sampler[int]):
    """Indices in micro-batches of similar length, the micro-batches in a seeded random order.

    The order depends only on ``seed`` and the epoch the Trainer sets (``set_epoch``), so a resumed
    run skips exactly the batches it had already seen.
    """

    def __init__(self, lengths: Sequence[int], micro_batch_size: int, seed: int) -> None:
        if micro_batch_size < 1:
            raise ValueError(f"micro_batch_size must be at least 1, not {micro_batch_size}")
        self.lengths = list(lengths)
        self.micro_batch_size = micro_batch_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def micro_batches(self) -> list[list[int]]:
        """This epoch's micro-batches, in training order."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        shuffled = torch.randperm(len(self.lengths), generator=generator).tolist()
        pool = POOL_MICRO_BATCHES * self.micro_batch_size
        batches = []
        for start in range(0, len(shuffled), pool):
            members = sorted(shuffled[start : start + pool], key=self.lengths.__getitem__)
            batches += [members[i : i + self.micro_batch_size] for i in range(0, len(members), self.micro_batch_size)]
        order = torch.randperm(len(batches), generator=generator).tolist()
        return [batches[i] for i in order]

    def __iter__(self) -> Iterator[int]:
        return iter([index for batch in self.micro_batches() for index in batch])


def longest_length_run(order: Sequence[int], lengths: Sequence[int], micro_batch_size: int) -> int:
    """The longest run of consecutive micro-batches all longer (or all shorter) than the median one.

    A random order of n micro-batches has runs of about log2(n); an order with length phases has runs
    as long as a phase. It is what a training order is tested against.
    """
    means = [
        sum(lengths[i] for i in order[start : start + micro_batch_size]) / len(order[start : start + micro_batch_size])
        for start in range(0, len(order), micro_batch_size)
    ]
    median = sorted(means)[len(means) // 2]
    longest = run = 0
    previous = None
    for mean in means:
        side = mean >= median
        run = run + 1 if side == previous else 1
        previous = side
        longest = max(longest, run)
    return longest
