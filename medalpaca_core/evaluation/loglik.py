"""``loglik`` mode: the option the model finds most probable after the paper's or the harness's prompt.

Deterministic and always "parsed", it measures what a model knows even when it is too small
to follow the answer format, which is where ``generate`` scores mostly parse failures. The
paper's prompt is the one ``generate`` uses, ending in "The Answer to the question is:"; the
candidate continuations are " A", " B", ... (``letter``) or each option's text (``text``),
ranked by their mean log-probability per token so that long option texts are not penalised for
their length. The harness's prompt (``harness.py``) ranks its choices (letters, or with ``text`` the
options' texts, as a task file whose ``doc_to_choice`` lists them) by summed log-probability (its
``acc``). Every record also holds ``acc_norm``'s pick (log-likelihood per byte of the choice, as
the harness normalises), and the options' probabilities renormalised over the
options, from which calibration is measured.

Letters are single tokens in the tokenizers used here, so one forward pass of the prompt alone
scores every letter. Option texts are scored after the same pass: its KV cache, repeated once per
option, feeds one more pass over the options' tokens only (``shared_prompt.py``), so a question
costs one prompt, not one per option. Several questions share each pass, and variants sharing a
base go into the same passes with their own adapters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from ..engine import Studio
from ..generation.answers import Unaskable
from ..generation.batch_cache import CacheLayoutError
from ..models.manager import LoadedModel
from ..models.registry import Variant
from ..text.prompts import PromptError, encode, render
from . import harness
from .exams import Question
from .forward import continuation_ids, forward_logprobs, target_logprobs
from .prompt import PromptStyle, exam_parts
from .results import new_record
from .shared_prompt import option_logprobs

CHOICES = ("letter", "text")
BATCH_ROWS = 16  # rows per forward pass when several questions are scored together
PROBABILITY_DIGITS = 4


@dataclass
class _Candidate:
    """One variant's prompt for a question (or a rotation of it) and the tokens of each option's continuation."""

    variant_id: str
    adapter: str
    question: Question
    prompt: str
    prompt_ids: list[int]
    continuations: dict[str, list[int]]
    choice_texts: dict[
        str, str
    ]  # what acc_norm divides by (in bytes): the option letter or text, or the harness choice
    shift: int = 0  # options rotated by this many places (the permutation check)
    asked: int = 0  # which of the questions scored together this one is


def continuation_text(question: Question, letter: str, choice: str) -> str:
    return f" {letter}" if choice == "letter" else f" {question.options[letter]}"


def _prompt(variant: Variant, question: Question, style: PromptStyle, choice: str, tokenizer: Any):
    """The prompt text, its ids and each option's continuation text, in the paper's or the harness's style."""
    if style.style == "harness":
        prompt = harness.context(question, style.kind, style.shots, choice)
        scored = harness.choices(question, style.kind, choice)
        texts = {letter: harness.TARGET_DELIMITER + text for letter, text in scored.items()}
        return prompt, tokenizer(prompt)["input_ids"], "medalpaca", texts
    prompt = render(variant.template, exam_parts(question, style.shots), tokenizer)
    texts = {letter: continuation_text(question, letter, choice) for letter in question.options}
    return prompt, encode(variant.template, prompt, tokenizer), variant.template, texts


def _candidate(
    studio: Studio, variant_id: str, question: Question, choice: str, style: PromptStyle, shift: int = 0
) -> tuple[LoadedModel, _Candidate]:
    variant = studio.variant(variant_id)
    loaded, adapter = studio.acquire(variant)
    tokenizer = loaded.tokenizer
    prompt, prompt_ids, template, texts = _prompt(variant, question, style, choice, tokenizer)
    continuations = {
        letter: continuation_ids(tokenizer, template, prompt, prompt_ids, text) for letter, text in texts.items()
    }
    length = len(prompt_ids) + max(len(ids) for ids in continuations.values())
    if length > loaded.context_window:
        raise PromptError(
            f"prompt and longest option are {length:,} tokens; the context window of {variant.id} is "
            f"{loaded.context_window:,}: the prompt would have to be cut, so the question is not asked"
        )
    choice_texts = {letter: text.strip() for letter, text in texts.items()}
    return loaded, _Candidate(variant_id, adapter, question, prompt, prompt_ids, continuations, choice_texts, shift)


def _multi_token(candidate: _Candidate) -> bool:
    return any(len(ids) > 1 for ids in candidate.continuations.values())


Scores = dict[str, tuple[float, int]]  # option -> (summed log-probability, tokens)


def _scores(loaded: LoadedModel, candidates: list[_Candidate], shared_prompt: bool) -> list[Scores]:
    """Every candidate's option scores: each prompt run once and its options scored from its cache
    (``shared_prompt``), else, or where the model's cache cannot repeat rows, each option a full row."""
    if not shared_prompt:
        return _full_row_scores(loaded, candidates)
    prompts = [(c.prompt_ids, c.adapter) for c in candidates]
    try:
        tokens = option_logprobs(loaded, prompts, [list(c.continuations.values()) for c in candidates])
    except CacheLayoutError:
        return _full_row_scores(loaded, candidates)
    return [
        {letter: (sum(values), len(values)) for letter, values in zip(c.continuations, scored, strict=True)}
        for c, scored in zip(candidates, tokens, strict=True)
    ]


def _full_row_scores(loaded: LoadedModel, candidates: list[_Candidate]) -> list[Scores]:
    """Every option's scores from one forward pass over full rows: the prompt alone when every option is one
    token (the last position scores them all), else one row of prompt + option per option."""
    if not any(_multi_token(c) for c in candidates):
        logprobs = forward_logprobs(loaded, [(c.prompt_ids, c.adapter) for c in candidates], keep=1)
        return [
            {letter: (float(logprobs[i, -1, ids[0]]), 1) for letter, ids in c.continuations.items()}
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
            scores[-1][letter] = (sum(values), len(values))
            row += 1
    return scores


def option_probabilities(logliks: dict[str, float]) -> dict[str, float]:
    """The options' log-likelihoods renormalised over the options (what Brier score and ECE are computed on)."""
    top = max(logliks.values())
    weights = {letter: math.exp(value - top) for letter, value in logliks.items()}
    total = sum(weights.values())
    return {letter: weight / total for letter, weight in weights.items()}


def rotated(question: Question, shift: int) -> Question:
    """The question with its option texts moved ``shift`` places up (A gets B's text, ...), the answer following."""
    letters = list(question.options)
    texts = [question.options[letters[(i + shift) % len(letters)]] for i in range(len(letters))]
    answer = letters[(letters.index(question.answer) - shift) % len(letters)]
    return replace(question, options=dict(zip(letters, texts, strict=True)), answer=answer)


def _record(candidate: _Candidate, scores: Scores, style: PromptStyle, choice: str) -> dict:
    """acc's pick (harness: the highest log-likelihood; paper: per token), acc_norm's (per byte), probabilities."""
    logliks = {letter: total for letter, (total, _) in scores.items()}
    if style.style == "harness":
        ranked = logliks
    else:
        ranked = {letter: total / count for letter, (total, count) in scores.items()}
    best = max(ranked, key=ranked.__getitem__)
    per_byte = {key: v / max(1, len(candidate.choice_texts[key].encode("utf-8"))) for key, v in logliks.items()}
    norm = max(per_byte, key=per_byte.__getitem__)
    question = candidate.question
    response = candidate.choice_texts[best] if style.style == "harness" else continuation_text(question, best, choice)
    return new_record(
        question,
        candidate.prompt,
        response.strip(),
        best,
        scores={letter: round(value, 4) for letter, value in ranked.items()},
        loglik={letter: round(value, 4) for letter, value in logliks.items()},
        probabilities={key: round(p, PROBABILITY_DIGITS) for key, p in option_probabilities(logliks).items()},
        parsed_norm=norm,
        correct_norm=norm == question.answer,
    )


def _rotation_summary(main: _Candidate, picks: list[tuple[_Candidate, str]]) -> list[dict[str, Any]]:
    """For every rotation: the position picked and the original option it holds."""
    letters = list(main.question.options)
    summary = []
    for candidate, position in picks:
        original = letters[(letters.index(position) + candidate.shift) % len(letters)]
        answer = candidate.question.answer  # where the right answer stood in this rotation
        summary.append({"shift": candidate.shift, "position": position, "picked": original, "answer": answer})
    return summary


Asked = tuple[Question, PromptStyle]  # a question and the prompt it is asked with
Outcome = tuple[dict[str, dict[str, Any]], dict[str, str]]  # variant -> record, variant -> why it failed


def loglik_records(
    studio: Studio,
    question: Question,
    variant_ids: list[str],
    choice: str = "letter",
    style: PromptStyle | None = None,
    rotate: bool = False,
) -> Outcome:
    """Each variant's record for ``question``, and the variants that failed (id -> error).

    With ``rotate``, the question is also asked with its options rotated through every position
    (in the same forward pass); the record then holds each rotation's pick under ``rotations``.
    """
    return loglik_many(studio, [(question, style or PromptStyle())], variant_ids, choice, rotate)[0]


def _shifts(question: Question, style: PromptStyle, rotate: bool) -> range:
    positional = not (style.style == "harness" and style.kind == "pubmedqa")  # its prompt lists no options
    return range(len(question.options)) if rotate and positional else range(1)


def _prepare(
    studio: Studio, asked: list[Asked], group: list[str], choice: str, rotate: bool, outcomes: list[Outcome]
) -> tuple[LoadedModel | None, list[_Candidate]]:
    """Every (question, variant, rotation) candidate of one base group; failures go into ``outcomes``."""
    prepared: list[tuple[LoadedModel, _Candidate]] = []
    for index, (question, style) in enumerate(asked):
        errors = outcomes[index][1]
        for variant_id in group:
            try:
                for shift in _shifts(question, style, rotate):
                    loaded, candidate = _candidate(studio, variant_id, rotated(question, shift), choice, style, shift)
                    prepared.append((loaded, replace(candidate, asked=index)))
            except PromptError as error:  # this question does not fit this variant: skipped, the run goes on
                errors[variant_id] = Unaskable(error)
            except Exception as error:  # this variant fails; the rest of its group goes on
                errors[variant_id] = str(error)
    prepared = [(model, c) for model, c in prepared if c.variant_id not in outcomes[c.asked][1]]
    if not prepared:
        return None, []
    loaded = prepared[-1][0]
    for stale, candidate in prepared:  # a failed adapter injection reloads the base: start again next time
        if stale is not loaded:
            message = "its base model was reloaded while loading another adapter; run again"
            outcomes[candidate.asked][1][candidate.variant_id] = message
    return loaded, [c for model, c in prepared if model is loaded and c.variant_id not in outcomes[c.asked][1]]


def _batches(candidates: list[_Candidate], rows: int, shared_prompt: bool) -> list[list[_Candidate]]:
    """Candidates in forward passes of about ``rows`` prompts, or full rows (a question's candidates are never
    split)."""
    batches: list[list[_Candidate]] = [[]]
    for candidate in candidates:
        size = sum(len(c.continuations) if _multi_token(c) and not shared_prompt else 1 for c in batches[-1])
        if batches[-1] and batches[-1][-1].asked != candidate.asked and size >= rows:
            batches.append([])
        batches[-1].append(candidate)
    return batches


def loglik_many(
    studio: Studio,
    asked: list[Asked],
    variant_ids: list[str],
    choice: str = "letter",
    rotate: bool = False,
    shared_prompt: bool = True,
) -> list[Outcome]:
    """``loglik_records`` for several questions, their prompts batched into forward passes of ``BATCH_ROWS``.

    ``shared_prompt=False`` scores every option as a full row (prompt + option, ``BATCH_ROWS`` rows a pass),
    the path before the shared prompt: the benchmark's yardstick, and the tests' reference.
    """
    outcomes: list[Outcome] = [({}, {}) for _ in asked]
    for group in studio.group_by_base(variant_ids):
        loaded, candidates = _prepare(studio, asked, group, choice, rotate, outcomes)
        scored: list[tuple[_Candidate, Scores]] = []
        for batch in _batches(candidates, BATCH_ROWS, shared_prompt):
            try:
                scored += zip(batch, _scores(loaded, batch, shared_prompt), strict=True)
            except Exception as error:  # a failed batch fails its variants, not the other groups
                for c in batch:
                    outcomes[c.asked][1][c.variant_id] = f"{type(error).__name__}: {error}"
        picks: dict[tuple[int, str], list[tuple[_Candidate, str]]] = {}
        for candidate, scores in scored:
            records, errors = outcomes[candidate.asked]
            if candidate.variant_id in errors:
                continue
            record = _record(candidate, scores, asked[candidate.asked][1], choice)
            if candidate.shift == 0:
                records[candidate.variant_id] = record
            picks.setdefault((candidate.asked, candidate.variant_id), []).append((candidate, record["parsed"]))
        if rotate:
            for (index, variant_id), variant_picks in picks.items():
                main = next(c for c, _ in variant_picks if c.shift == 0)
                outcomes[index][0][variant_id]["rotations"] = _rotation_summary(main, variant_picks)
    return outcomes
