"""A row's tokens: the ``Row`` a batch decodes, the incremental decoder, left padding, the tokens that end it.

The pieces of a row's decoding that need no running batch (``scheduler`` runs the batch); the settings
and the answers everyone reads are ``settings`` and ``answers``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Row:
    """One row of a batch: a variant's prompt tokens and the adapter that answers it."""

    variant_id: str
    prompt_ids: list[int]
    adapter: str
    template: str
    truncated: bool = False


class IncrementalDecoder:
    """The text of a growing token list, decoding only the newest tokens each step.

    Re-decoding the whole answer every step costs O(n) per token; decoding a short window and
    appending its new characters is O(1). The window starts one token back so that tokenizers
    which drop a leading space on the first token (sentencepiece) decode it right, and a step
    whose bytes end inside a UTF-8 character waits for the next token.
    """

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.text = ""
        self._prefix = 0
        self._read = 0

    def push(self, token: int) -> str:
        self.ids.append(token)
        before = self.tokenizer.decode(self.ids[self._prefix : self._read], skip_special_tokens=True)
        after = self.tokenizer.decode(self.ids[self._prefix :], skip_special_tokens=True)
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.text += after[len(before) :]
            self._prefix, self._read = self._read, len(self.ids)
        return self.text


def left_pad(rows: Sequence[list[int]], pad_id: int) -> tuple[list[list[int]], list[list[int]]]:
    """Token id rows padded on the left to one width (so that all end together), and their attention mask
    (0 on the padding)."""
    width = max(len(ids) for ids in rows)
    padded = [[pad_id] * (width - len(ids)) + ids for ids in rows]
    mask = [[0] * (width - len(ids)) + [1] * len(ids) for ids in rows]
    return padded, mask


def eos_token_ids(model: Any, tokenizer: Any) -> set[int]:
    """Every token that ends an answer: the tokenizer's EOS and the model's generation config's."""
    configured = getattr(model.generation_config, "eos_token_id", None)
    configured = configured if isinstance(configured, list) else [configured]
    return {token for token in [tokenizer.eos_token_id, *configured] if token is not None}
