"""Context-grounded records, the way RAFT builds them (Zhang et al. 2024, "Retrieval-Augmented Fine-Tuning").

Medical Meadow records carry no context, so a model fine-tuned on them alone learns to ignore one --
yet the app's first use is answering a question *from* a given context. A grounded record shows, as
its context, the record's own answer passage (the "gold" passage) shuffled among ``distractors``
passages drawn from other records; in a share of them (``no_gold_share``) the gold passage is left
out, so the model learns both to use a relevant context and not to trust an irrelevant one. The
answer stays the record's own answer either way.

The same builder makes the held-out "gold among distractors" test set of the perplexity report, so
training and measurement agree on what a context looks like. Everything is deterministic by seed.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace

from .records import QAPair

SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
PASSAGE_SEPARATOR = "\n\n"


class GroundingError(ValueError):
    """Grounding settings out of range, or too few records to draw distractors from."""


@dataclass(frozen=True)
class Grounding:
    """How many records get a context, and what that context holds."""

    share: float = 0.0  # share of the records that get a context (0: none, the paper's format)
    distractors: int = 2  # passages from other records in each context (k)
    no_gold_share: float = 0.2  # share of the grounded records whose context lacks the gold passage
    passage_chars: int = 400  # a passage is cut to whole sentences within this many characters
    seed: int = 42

    def check(self) -> Grounding:
        """Return self, or raise a GroundingError naming the setting that is out of range."""
        if not 0 <= self.share <= 1:
            raise GroundingError(f"context share must be between 0 and 1, got {self.share}")
        if not 0 <= self.no_gold_share <= 1:
            raise GroundingError(f"context no-gold share must be between 0 and 1, got {self.no_gold_share}")
        if not 1 <= self.distractors <= 16:
            raise GroundingError(f"context distractors must be between 1 and 16, got {self.distractors}")
        if self.passage_chars < 40:
            raise GroundingError(f"context passage length must be at least 40 characters, got {self.passage_chars}")
        return self


def passage(text: str, max_chars: int) -> str:
    """The leading whole sentences of ``text`` that fit ``max_chars`` (a retrieval-sized chunk).

    A first sentence longer than that is cut at a word boundary, so a passage is never empty.
    """
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    chunk = ""
    for sentence in SENTENCE_END.split(text):
        if len(chunk) + len(sentence) + 1 > max_chars:
            break
        chunk = f"{chunk} {sentence}".strip()
    return chunk or text[:max_chars].rsplit(" ", 1)[0]


def _pool(pairs: list[QAPair], max_chars: int) -> list[str]:
    """The distinct passages of ``pairs``, in first-seen order."""
    return list(dict.fromkeys(passage(pair.output, max_chars) for pair in pairs))


def _context(gold: str, with_gold: bool, pool: list[str], count: int, rng: random.Random) -> str:
    """``count`` passages of ``pool`` other than ``gold``, shuffled, ``gold`` among them if ``with_gold``.

    A pool of exactly k+1 passages holds only k besides the gold one, so a no-gold context then gets k.
    """
    chosen: list[str] = []
    count = min(count, len(pool) - (gold in pool))
    while len(chosen) < count:
        candidate = pool[rng.randrange(len(pool))]
        if candidate != gold and candidate not in chosen:
            chosen.append(candidate)
    if with_gold:
        chosen.append(gold)
    rng.shuffle(chosen)
    return PASSAGE_SEPARATOR.join(chosen)


def ground(pairs: list[QAPair], settings: Grounding) -> list[QAPair]:
    """``pairs`` in their order, a seeded ``share`` of them given a RAFT context; the rest unchanged."""
    settings.check()
    count = round(settings.share * len(pairs))
    if count == 0:
        return list(pairs)
    pool = _pool(pairs, settings.passage_chars)
    needed = settings.distractors + 1
    if len(pool) < needed:
        raise GroundingError(
            f"{settings.distractors} distractors need at least {needed} records with different answers; got {len(pool)}"
        )
    rng = random.Random(settings.seed)
    chosen = set(rng.sample(range(len(pairs)), count))
    grounded = []
    for index, pair in enumerate(pairs):
        if index not in chosen:
            grounded.append(pair)
            continue
        gold = passage(pair.output, settings.passage_chars)
        with_gold = rng.random() >= settings.no_gold_share
        distractors = settings.distractors if with_gold else settings.distractors + 1
        grounded.append(replace(pair, context=_context(gold, with_gold, pool, distractors, rng)))
    return grounded
