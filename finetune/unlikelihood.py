"""Sequence-level unlikelihood: the model answers its own training questions, and what it repeats is penalised.

Cross-entropy only ever shows a model good answers, so nothing in it says "do not say that again":
a small model that has learnt the answers well (and where they end, see ``eos_probe``) still falls,
under greedy decoding, into cycling through the items of a list it cannot close. Welleck et al. 2020
("Neural Text Generation with Unlikelihood Training", ICLR) fix this where it happens: let the model
continue a prompt greedily, find the tokens of every n-gram it repeats within its own continuation,
and add ``-log(1 - p(token))`` for each of them to the loss, beside the ordinary cross-entropy. Their
greedy continuations' repeated 4-grams fell from 44% to about 1% with the perplexity nearly unchanged.

Here the prompts are the micro-batch's own questions (with their RAFT contexts, when they have one),
so every step penalises the loops the model makes *now*. Only answers that repeat by the evaluation
rule (``medalpaca_core.evaluation.repetition``: a sentence said twice, or 8 words said 3 times) are
penalised, and in them only repeats within the answer. Welleck's rule -- every repeated 4-gram of every
answer -- was tried first on the LoRA adapter (40 steps): 0 of 40 validation answers repeated, 38 ended
by EOS, P(EOS) after the gold answer 0.447, with-context loss 0.352 -> 0.446. This rule (30 steps): 0
repeated, 40 ended, P(EOS) 0.519, but the with-context loss rose further, to 0.492. Sparing answers that
do not loop did not spare context copying: both phases teach the adapter to end at an item or sentence
where the epoch copied the context on (a later phase with full-size contexts, ``make adapter-ground``,
won the copying back: 0.340). The share of answers that repeat is logged as the run goes:
the training-time view of the target that greedy answers repeat in at most 5% of questions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from medalpaca_core.evaluation.repetition import repetition
from medalpaca_core.generation.decoding import left_pad

from .data import IGNORE_INDEX


def repeated_ngram_mask(tokens: list[int], n: int) -> list[bool]:
    """For each token, whether it belongs to an n-gram that already occurred earlier in ``tokens``."""
    seen: set[tuple[int, ...]] = set()
    marked = [False] * len(tokens)
    for start in range(len(tokens) - n + 1):
        gram = tuple(tokens[start : start + n])
        if gram in seen:
            marked[start : start + n] = [True] * n
        seen.add(gram)
    return marked


def prompts_of(inputs: dict[str, torch.Tensor]) -> list[list[int]]:
    """Each row's prompt: its tokens before the first labelled (answer) token."""
    prompts = []
    for ids, labels in zip(inputs["input_ids"].tolist(), inputs["labels"].tolist(), strict=True):
        first = next((i for i, label in enumerate(labels) if label != IGNORE_INDEX), len(labels))
        prompts.append(ids[:first])
    return prompts


@dataclass
class OwnAnswers:
    """The greedy continuations of one micro-batch and, in those that loop, which tokens repeat an n-gram."""

    prompts: list[list[int]]
    answers: list[list[int]]  # without the EOS and what follows it
    marked: list[list[bool]]
    repeats: int  # answers that repeat by the evaluation rule (a sentence twice, or a looping phrase)


@dataclass
class SequenceUnlikelihood:
    """The penalty, its settings and running totals for the training log."""

    weight: float
    ngram: int
    new_tokens: int
    tokenizer: Any  # decodes the answers for the repetition rule; its EOS ends them, its pad fills batches
    answers_seen: int = 0
    repeats_seen: int = 0
    penalty_sum: float = 0.0

    @property
    def eos_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id

    @torch.no_grad()
    def answer(self, model: Any, prompts: list[list[int]], device: torch.device) -> OwnAnswers:
        """Greedy continuations of ``prompts`` (dropout off), cut at EOS; the model's mode is restored."""
        was_training = model.training
        model.eval()
        try:
            ids, mask = left_pad(prompts, self.pad_id)
            out = model.generate(
                input_ids=torch.tensor(ids, device=device),
                attention_mask=torch.tensor(mask, device=device),
                max_new_tokens=self.new_tokens,
                do_sample=False,
                use_cache=True,
                pad_token_id=self.pad_id,
                eos_token_id=self.eos_id,
            )
        finally:
            model.train(was_training)
        answers = [_until(row, self.eos_id) for row in out[:, len(ids[0]) :].tolist()]
        texts = self.tokenizer.batch_decode(answers, skip_special_tokens=True)
        loops = [repetition(text) is not None for text in texts]
        marked = [
            repeated_ngram_mask(a, self.ngram) if loop else [False] * len(a)
            for a, loop in zip(answers, loops, strict=True)
        ]
        return OwnAnswers(prompts, answers, marked, sum(loops))

    def penalty(self, model: Any, own: OwnAnswers, device: torch.device) -> torch.Tensor:
        """Summed ``-log(1 - p)`` of every marked token, under the model with gradients on."""
        rows = [i for i, marks in enumerate(own.marked) if any(marks)]
        if not rows:
            return torch.zeros((), device=device)
        sequences = [own.prompts[i] + own.answers[i] for i in rows]
        width = max(map(len, sequences))
        ids = torch.tensor([s + [self.pad_id] * (width - len(s)) for s in sequences], device=device)
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in sequences], device=device)
        logits = model(input_ids=ids, attention_mask=mask).logits
        # position p predicts token p + 1: the answer's token j is predicted at len(prompt) + j - 1
        where = [(r, len(own.prompts[i]) + j - 1) for r, i in enumerate(rows) for j, m in enumerate(own.marked[i]) if m]
        batch, position = (torch.tensor(column, device=device) for column in zip(*where, strict=True))
        tokens = ids[batch, position + 1]
        log_p = torch.log_softmax(logits[batch, position].float(), dim=-1).gather(1, tokens[:, None]).squeeze(1)
        return -torch.log1p(-log_p.exp().clamp(max=1 - 1e-6)).sum()

    def __call__(self, model: Any, generator: Any, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """This micro-batch's summed penalty: ``generator`` (the unwrapped model) answers, ``model`` (as the
        Trainer wraps it, so gradients synchronise across processes) is penalised. The running totals feed
        the training log."""
        device = inputs["input_ids"].device
        own = self.answer(generator, prompts_of(inputs), device)
        value = self.penalty(model, own, device)
        self.answers_seen += len(own.answers)
        self.repeats_seen += own.repeats
        self.penalty_sum += float(value.detach())
        return value

    def drain_log(self) -> dict[str, float]:
        """The share of own answers that repeated and the mean penalty per answer since the last log line."""
        if not self.answers_seen:
            return {}
        logs = {
            "own_repeat_share": self.repeats_seen / self.answers_seen,
            "unlikelihood": self.penalty_sum / self.answers_seen,
        }
        self.answers_seen = self.repeats_seen = 0
        self.penalty_sum = 0.0
        return logs


def _until(tokens: list[int], eos_id: int) -> list[int]:
    return tokens[: tokens.index(eos_id)] if eos_id in tokens else tokens
