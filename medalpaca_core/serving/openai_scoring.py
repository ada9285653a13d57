"""Log-probabilities for the OpenAI API: legacy completions (``echo``, ``logprobs``, token ids, batches) and a
chat answer's ``logprobs``.

lm-evaluation-harness's ``local-completions`` model scores a multiple-choice option by sending the question
and the option as one list of token ids with ``echo: true, logprobs: 1, max_tokens: 1`` and summing the
option tokens' ``token_logprobs`` (it drops the one generated token at the end). These functions run in a
worker thread (the API awaits them) and turn ``token_logprobs`` entries into OpenAI's JSON. Unlike the
text path, a legacy completion is cut only at the request's ``stop`` strings, not at the template's
markers (as vLLM does): a scoring client needs exactly the tokens it asked for.
"""

from __future__ import annotations

from typing import Any

from ..engine import Studio
from ..generation.decoding import eos_token_ids
from ..models.registry import Variant
from ..text.prompts import encode, fit_prompt
from .openai_schema import (
    ApiError,
    Job,
    Piece,
    chat_logprobs,
    completion_choice,
    legacy_logprobs,
    scored_response,
    token_counts,
)
from .token_logprobs import TokenLogprob, complete, score


def _pieces(tokenizer: Any, entries: list[TokenLogprob]) -> list[Piece]:
    def text(token: int) -> str:
        return tokenizer.decode([token])

    return [(text(e.token), e.logprob, tuple((text(t), v) for t, v in e.top)) for e in entries]


def _prompt_ids(prompt: str | tuple[int, ...], template: str, loaded: Any, new_tokens: int) -> list[int]:
    """A prompt's token ids, checked against the vocabulary and the context window."""
    ids = encode(template, prompt, loaded.tokenizer) if isinstance(prompt, str) else list(prompt)
    vocabulary = loaded.model.get_input_embeddings().num_embeddings
    if not ids or max(ids) >= vocabulary:
        what = "an empty prompt" if not ids else f"token id {max(ids)}"
        raise ApiError(400, f"'prompt' holds {what}; token ids go from 0 to {vocabulary - 1}", param="prompt")
    if len(ids) + new_tokens > loaded.context_window:
        message = f"'prompt' is {len(ids):,} tokens; with {new_tokens} new ones it exceeds the context window of "
        raise ApiError(400, message + f"{loaded.context_window:,}", param="prompt")
    return ids


def _cut(tokenizer: Any, new: list[TokenLogprob], stops: tuple[str, ...]) -> tuple[list[TokenLogprob], bool]:
    """The new tokens up to the first stop string (the token that completes it and later ones go)."""
    for count in range(1, len(new) + 1):
        text = tokenizer.decode([entry.token for entry in new[:count]], skip_special_tokens=True)
        if any(stop in text for stop in stops):
            return new[: count - 1], True
    return new, False


def _choice(
    index: int, job: Job, prompt: str | tuple[int, ...], entries: list[TokenLogprob], start: int, loaded: Any
) -> tuple[dict[str, Any], int]:
    """One prompt's choice and its number of new tokens."""
    tokenizer, scoring = loaded.tokenizer, job.scoring
    new, stopped = _cut(tokenizer, entries[start:], job.stop)
    ended = bool(new) and new[-1].token in eos_token_ids(loaded.model, tokenizer)
    reason = "stop" if stopped or ended else "length"
    text = tokenizer.decode([entry.token for entry in new], skip_special_tokens=True)
    shown = new
    if scoring.echo:
        text = (prompt if isinstance(prompt, str) else tokenizer.decode(list(prompt))) + text
        shown = entries[:start] + new
    logprobs = legacy_logprobs(_pieces(tokenizer, shown)) if scoring.logprobs is not None else None
    return completion_choice(index, text, reason, logprobs), len(new)


def legacy_completion(studio: Studio, variant: Variant, job: Job) -> dict[str, Any]:
    """A legacy completions request answered: every prompt's text, and its tokens' log-probabilities."""
    scoring = job.scoring
    loaded, adapter = studio.acquire(variant)
    rows = [_prompt_ids(prompt, variant.template, loaded, scoring.new_tokens) for prompt in scoring.prompts]
    scored = complete(loaded, adapter, rows, job.settings, scoring.new_tokens, scoring.logprobs or 0)
    choices, new_tokens = [], 0
    for index, (prompt, ids, entries) in enumerate(zip(scoring.prompts, rows, scored, strict=True)):
        choice, count = _choice(index, job, prompt, entries, len(ids), loaded)
        choices.append(choice)
        new_tokens += count
    return scored_response(job, choices, token_counts(sum(len(ids) for ids in rows), new_tokens))


def answer_logprobs(studio: Studio, variant: Variant, job: Job, answer: str) -> dict[str, Any]:
    """A chat answer's tokens (as the tokenizer splits its text) scored after the prompt the answer came from."""
    loaded, adapter = studio.acquire(variant)
    tokenizer = loaded.tokenizer
    window, new = loaded.context_window, job.settings.max_new_tokens
    prompt, _ = fit_prompt(variant.template, job.parts, tokenizer, window, new)
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    if not answer_ids:
        return chat_logprobs([])
    entries = score(loaded, adapter, [prompt + answer_ids], job.logprobs or 0)[0]
    return chat_logprobs(_pieces(tokenizer, entries[len(prompt) :]))
