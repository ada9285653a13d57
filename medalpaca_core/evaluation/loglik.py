"""``loglik`` mode: the option the model finds most probable after the paper's prompt.

Deterministic and always "parsed", it measures what a model knows even when it is too small
to follow the answer format, which is where ``generate`` scores mostly parse failures. The
prompt is the one ``generate`` uses, ending in "The Answer to the question is:"; the candidate
continuations are " A", " B", ... (``letter``) or each option's text (``text``), scored by their
mean log-probability per token so that long option texts are not penalised for their length.

Letters are single tokens in the tokenizers used here, so one forward pass of the prompt alone
scores every letter; option texts need one row per option, still in one forward pass. Variants
sharing a base go into the same pass with their own adapters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..engine import Studio
from ..loader import LoadedModel
from ..prompts import PromptError, encode, render
from .exams import Question
from .forward import continuation_ids, forward_logprobs, target_logprobs
from .prompt import exam_parts
from .results import new_record

CHOICES = ("letter", "text")


@dataclass
class _Candidate:
    """One variant's prompt for a question and the token ids of each option's continuation."""

    variant_id: str
    adapter: str
    prompt: str
    prompt_ids: list[int]
    continuations: dict[str, list[int]]


def continuation_text(question: Question, letter: str, choice: str) -> str:
    return f" {letter}" if choice == "letter" else f" {question.options[letter]}"


def _candidate(studio: Studio, variant_id: str, question: Question, choice: str) -> tuple[LoadedModel, _Candidate]:
    variant = studio.variant(variant_id)
    loaded, adapter = studio.acquire(variant)
    tokenizer = loaded.tokenizer
    prompt = render(variant.template, exam_parts(question), tokenizer)
    prompt_ids = encode(variant.template, prompt, tokenizer)
    continuations = {}
    for letter in question.options:
        text = continuation_text(question, letter, choice)
        continuations[letter] = continuation_ids(tokenizer, variant.template, prompt, prompt_ids, text)
    length = len(prompt_ids) + max(len(ids) for ids in continuations.values())
    if length > loaded.context_window:
        raise PromptError(
            f"{question.key}: prompt and longest option are {length:,} tokens; "
            f"the context window of {variant.id} is {loaded.context_window:,}"
        )
    return loaded, _Candidate(variant_id, adapter, prompt, prompt_ids, continuations)


def _scores(loaded: LoadedModel, candidates: list[_Candidate]) -> list[dict[str, float]]:
    """Mean log-probability per token of every option, for every candidate, in one forward pass."""
    if all(len(ids) == 1 for c in candidates for ids in c.continuations.values()):
        logprobs = forward_logprobs(loaded, [(c.prompt_ids, c.adapter) for c in candidates], keep=1)
        return [
            {letter: float(logprobs[i, -1, ids[0]]) for letter, ids in c.continuations.items()}
            for i, c in enumerate(candidates)
        ]
    rows = [(c.prompt_ids + ids, c.adapter) for c in candidates for ids in c.continuations.values()]
    keep = max(len(ids) for c in candidates for ids in c.continuations.values()) + 1
    logprobs = forward_logprobs(loaded, rows, keep)
    scores, row = [], 0
    for c in candidates:
        scores.append({})
        for letter, ids in c.continuations.items():
            values = target_logprobs(logprobs[row], rows[row][0], len(ids))
            scores[-1][letter] = sum(values) / len(values)
            row += 1
    return scores


def loglik_records(
    studio: Studio, question: Question, variant_ids: list[str], choice: str = "letter"
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Each variant's record for ``question``, and the variants that failed (id -> error)."""
    records: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    for group in studio.group_by_base(variant_ids):
        prepared: list[tuple[LoadedModel, _Candidate]] = []
        for variant_id in group:
            try:
                prepared.append(_candidate(studio, variant_id, question, choice))
            except Exception as error:  # this variant fails; the rest of its group goes on
                errors[variant_id] = str(error)
        if not prepared:
            continue
        loaded = prepared[-1][0]
        for stale, candidate in prepared:  # a failed adapter injection reloads the base: start again next time
            if stale is not loaded:
                errors[candidate.variant_id] = "its base model was reloaded while loading another adapter; run again"
        candidates = [candidate for model, candidate in prepared if model is loaded]
        try:
            all_scores = _scores(loaded, candidates)
        except Exception as error:  # a failed batch fails its variants, not the other groups
            errors.update({c.variant_id: f"{type(error).__name__}: {error}" for c in candidates})
            continue
        for candidate, scores in zip(candidates, all_scores, strict=True):
            best = max(scores, key=scores.__getitem__)
            records[candidate.variant_id] = new_record(
                question,
                candidate.prompt,
                continuation_text(question, best, choice).strip(),
                best,
                scores={letter: round(value, 4) for letter, value in scores.items()},
            )
    return records, errors
